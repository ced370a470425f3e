/* intake.c -- input: handles, queues, the merge of a pair, merge_wait and
 * backpressure (intake.h).
 *
 * DESIGN: every message fetched is copied into its pair's queue for its side
 * (a message of a pair not ready, or before the offset it expects, is
 * dropped: it is read again after the pair's seek).  The merge takes a pair's
 * messages in timestamp order; a side that is empty is waited for, up to
 * merge_wait once it has caught up with its partition's end, for as long as
 * it takes before (CONTRACT.md "Order across the two topics").  "Caught up"
 * is the last fetch answer's word, confirmed by the broker itself after the
 * message going on alone arrived (confirm_ends, end_probe.c): a fetch
 * answer can be old.  Backpressure
 * pauses a side holding its share of buffer.max_events, and past the whole
 * budget drains a handle only when the merge waits for it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/end_probe.h"
#include "daemon/intake.h"
#include "daemon/kafka.h"
#include "daemon/log.h"

const char *topic_of(const struct intake *in, int t) {
        return t == REL ? in->env->cfg->topic_relationships : in->env->cfg->topic_subscriptions;
}

rd_kafka_t *input_handle(const struct intake *in, int t) {
        return t == REL ? in->env->consumer : in->env->sub_reader;
}

/* One side of a pair on its handle: sought to `offset`, added to the
 * handle's assignment there, or removed from it.  Logs, and returns -EAGAIN,
 * when librdkafka refuses.
 *
 * A seek's own outcome is the partition's .err, not the call's: a seek of a
 * partition whose fetch has not started yet is refused there (_STATE: the
 * group consumer's assignment is still asking the coordinator for the
 * group's committed offset).  Taken as done, the fetch would then start at
 * the group's offset, which after Redis came back older is ahead of Redis's:
 * the events between would be skipped. */
int side_op(struct intake *in, const struct pair *p, int t, enum side_op op, int64_t offset) {
        static const char *const what[] = {"seek", "assign", "unassign"};
        rd_kafka_t *rk = t == REL ? in->env->consumer : in->env->sub_reader;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_error_t *e;

        rd_kafka_topic_partition_list_add(l, topic_of(in, t), p->partition)->offset = offset;
        if (op == SIDE_SEEK) {
                e = rd_kafka_seek_partitions(rk, l, 5000);
                if (!e && l->elems[0].err)
                        e = rd_kafka_error_new(l->elems[0].err, "%s", rd_kafka_err2str(l->elems[0].err));
        } else if (op == SIDE_ASSIGN)
                e = rd_kafka_incremental_assign(rk, l);
        else
                e = rd_kafka_incremental_unassign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (!e)
                return 0;
        log_warning("partition %" PRId32 ": cannot %s %s: %s", p->partition, what[op], topic_of(in, t),
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
int sub_start(struct intake *in, struct pair *p) {
        int r = side_op(in, p, SUB, p->sub_assigned ? SIDE_SEEK : SIDE_ASSIGN, p->expect[SUB]);

        if (r == 0)
                p->sub_assigned = true;
        return r;
}

void sub_stop(struct intake *in, struct pair *p) {
        if (!p->sub_assigned || !in->env->sub_reader)
                return;
        set_side_paused(in, p, SUB, false);      /* a pause could outlive the assignment */
        if (side_op(in, p, SUB, SIDE_UNASSIGN, RD_KAFKA_OFFSET_INVALID) == 0)
                p->sub_assigned = false;
}

void set_paused(struct intake *in, struct pair *p, bool paused) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, in->env->cfg->topic_relationships, p->partition);
        if (paused)
                rd_kafka_pause_partitions(in->env->consumer, l);
        else
                rd_kafka_resume_partitions(in->env->consumer, l);
        rd_kafka_topic_partition_list_destroy(l);
}

/* --------------------------------------------------------------- polling -- */

void take_message(struct intake *in, rd_kafka_message_t *m, int t) {
        struct pair *p = pair_find(in->pairs, m->partition);
        int64_t now = mono_ms();
        struct inmsg *c;

        if (p)
                p->heard_at[t] = now;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && p &&
            p->phase == PAIR_READY && (p->expect[t] < 0 || m->offset >= p->expect[t])) {
                p->at_end[t] = p->heard[t] = true;
                p->end_pos[t] = m->offset;
        }
        if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        in->env->st.kafka_errors++;
                        log_warning("Kafka: %s", rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
                return;
        }
        if (!p || p->phase != PAIR_READY || (p->expect[t] >= 0 && m->offset < p->expect[t])) {
                rd_kafka_message_destroy(m);    /* not ours, or before the stored offset */
                return;
        }
        p->expect[t] = m->offset + 1;
        p->last_arrival = now;
        p->at_end[t] = false;
        p->heard[t] = true;
        mcd_log_full(LOG_DEBUG,
                     &(struct mcd_log_fields){.topic = topic_of(in, t), .partition = m->partition, .offset = m->offset},
                     "buffered message with timestamp %" PRId64, rd_kafka_message_timestamp(m, NULL));
        c = inmsg_copy(m, now);
        rd_kafka_message_destroy(m);
        if (!c || q_push(&p->q[t], c) < 0) {
                log_error("out of memory buffering a message; partition %" PRId32 " restarts", p->partition);
                free(c);
                pairs_restart(in->pairs, p);
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
static size_t buffer_budget(const struct intake *in) {
        const struct mcd_config *cfg = in->env->cfg;

        return (size_t)(cfg->buffer_max > cfg->batch_max ? cfg->buffer_max : cfg->batch_max);
}

/* A side's share of the budget (at least 256 messages, at most two
 * batches): however the merge drains the handles, no side holds more. */
static size_t side_limit(const struct intake *in) {
        size_t share = buffer_budget(in) / (2 * (in->pairs->n ? in->pairs->n : 1));
        size_t most = (size_t)in->env->cfg->batch_max * 2 + 100;

        if (share < 256)
                share = 256;
        return share < most ? share : most;
}

size_t buffered(const struct intake *in) {
        size_t n = 0;
        for (size_t i = 0; i < in->pairs->n; i++)
                if (in->pairs->v[i]->phase == PAIR_READY)
                        n += q_len(&in->pairs->v[i]->q[REL]) + q_len(&in->pairs->v[i]->q[SUB]);
        return n;
}

void set_side_paused(struct intake *in, struct pair *p, int t, bool paused) {
        rd_kafka_topic_partition_list_t *l;

        if (p->side_paused[t] == paused)
                return;
        l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic_of(in, t), p->partition);
        if (t == REL && paused)
                rd_kafka_pause_partitions(in->env->consumer, l);
        else if (t == REL)
                rd_kafka_resume_partitions(in->env->consumer, l);
        else if (paused)
                rd_kafka_pause_partitions(in->env->sub_reader, l);
        else
                rd_kafka_resume_partitions(in->env->sub_reader, l);
        rd_kafka_topic_partition_list_destroy(l);
        p->side_paused[t] = paused;
}

void apply_backpressure(struct intake *in) {
        size_t limit = side_limit(in);

        for (size_t i = 0; i < in->pairs->n; i++) {
                struct pair *p = in->pairs->v[i];
                if (p->phase != PAIR_READY)
                        continue;
                for (int t = REL; t <= SUB; t++) {
                        if (q_len(&p->q[t]) >= limit)
                                set_side_paused(in, p, t, true);
                        else if (q_len(&p->q[t]) < limit / 2)
                                set_side_paused(in, p, t, false);
                }
        }
}

/* Drains up to `chunk` messages from one handle; returns how many. */
static size_t drain(struct intake *in, rd_kafka_t *rk, int t, size_t chunk) {
        rd_kafka_message_t *m;
        size_t n = 0;
        while (n < chunk && (m = rd_kafka_consumer_poll(rk, 0))) {
                take_message(in, m, t);
                n++;
        }
        return n;
}


/* Does some pair wait for the topic behind handle t: its t side empty, the
 * other side holding messages? */
static bool merge_waits_for(const struct intake *in, int t) {
        for (size_t i = 0; i < in->pairs->n; i++) {
                const struct pair *p = in->pairs->v[i];
                if (p->phase == PAIR_READY && q_len(&p->q[t]) == 0 && q_len(&p->q[!t]) > 0)
                        return true;
        }
        return false;
}

#define FETCH_STALL_MS 30            /* a side silent this long while the merge waits for it */
#define FETCH_CHECK_EVERY_MS 10      /* is looked for this often per handle, */
#define FETCH_WAKE_EVERY_MS 100      /* and has its fetcher woken at most this often per handle */

static bool side_caught_up(const struct intake *in, const struct pair *p, int t);
static size_t confirm_ends(struct intake *in, int t);

#define END_WAIT_MS 100              /* a wait for input outlasts its time this long for the broker's answer */

/* The next pair, from wake_next[t] on, whose t side the merge waits for
 * (empty, the other side holding messages), has heard nothing for
 * FETCH_STALL_MS and has more to fetch (not at its partition's end, or its
 * end not known yet); NULL when none. */
static struct pair *waits_to_fetch(struct intake *in, int t, int64_t now) {
        size_t n = in->pairs->n;

        for (size_t k = 0; k < n; k++) {
                size_t i = (in->wake_next[t] + k) % n;
                struct pair *p = in->pairs->v[i];
                if (p->phase == PAIR_READY && q_len(&p->q[t]) == 0 && q_len(&p->q[!t]) > 0 &&
                    now - p->heard_at[t] >= FETCH_STALL_MS && !side_caught_up(in, p, t)) {
                        in->wake_next[t] = i + 1;
                        return p;
                }
        }
        return NULL;
}

/* A side the merge waits for, with more to fetch, silent for
 * FETCH_STALL_MS: librdkafka 2.0 may have stopped fetching it when its
 * handle's queue was full and not decided again since it was drained
 * (mcd_kafka_wake_fetcher).  Its leader's thread is woken, without waiting
 * for the answer, at most every FETCH_WAKE_EVERY_MS per handle, the pairs
 * taken in turn so that every leader gets its turn.  Without it the merge
 * stalled up to a second at a time in the benchmark, a third of the run. */
static void wake_stalled(struct intake *in, int t) {
        int64_t now = mono_ms();
        struct pair *p;

        if (now - in->checked_at[t] < FETCH_CHECK_EVERY_MS || now - in->woken_at[t] < FETCH_WAKE_EVERY_MS)
                return;
        in->checked_at[t] = now;
        if (!(p = waits_to_fetch(in, t, now)))
                return;
        in->woken_at[t] = now;
        mcd_log(LOG_DEBUG, "partition %" PRId32 ": %s silent for %" PRId64 " ms while the merge waits for it; "
                "waking its fetcher", p->partition, topic_of(in, t), now - p->heard_at[t]);
        if (mcd_kafka_wake_fetcher(input_handle(in, t), topic_of(in, t), p->partition) == 0)
                in->env->st.fetch_wakeups++;
}

/* Drains what librdkafka has fetched and waits for more only while fewer
 * than `enough` messages can be merged, for at most wait_ms.  Past the
 * buffer budget a handle is drained only while the merge cannot fill a batch
 * and some pair waits for that handle's topic: what is buffered is of no use
 * without it.  So the budget never keeps a side waited for from being
 * fetched for good: either the merge fills batches from other pairs, making
 * room, or it cannot, and that side's handle is drained; the side, empty,
 * is never paused (apply_backpressure). */
void poll_inputs(struct intake *in, int wait_ms, size_t enough) {
        int64_t deadline = mono_ms() + wait_ms;
        size_t budget = buffer_budget(in), pending;
        rd_kafka_message_t *first;

        /* The group handle is served at least once, however full the
         * buffers: rebalances arrive through it. */
        if ((first = rd_kafka_consumer_poll(in->env->consumer, 0)))
                take_message(in, first, REL);
        for (;;) {
                bool room = buffered(in) < budget;
                bool starved = !room && mergeable(in) < enough;
                size_t got = 0;

                if (room || (starved && merge_waits_for(in, REL)))
                        got += drain(in, in->env->consumer, REL, 1024);
                if (room || (starved && merge_waits_for(in, SUB)))
                        got += drain(in, in->env->sub_reader, SUB, 1024);
                apply_backpressure(in);
                if (got > 0 && !*in->env->stop)
                        continue;
                wake_stalled(in, REL);
                wake_stalled(in, SUB);
                /* An answer awaited holds the return (a few ms), up to
                 * END_WAIT_MS past the deadline, so that a batch is not cut
                 * just before its lone side may go on. */
                pending = confirm_ends(in, REL) + confirm_ends(in, SUB);
                if (wait_ms <= 0)
                        pending = 0;
                if (*in->env->stop || mono_ms() >= deadline + (pending ? END_WAIT_MS : 0) ||
                    (mergeable(in) >= enough && !pending))
                        return;
                if (!room && !merge_waits_for(in, REL) && !merge_waits_for(in, SUB))
                        return;         /* full: what can be merged goes first */
                rd_kafka_message_t *m = rd_kafka_consumer_poll(in->env->consumer, 2);
                if (m)
                        take_message(in, m, REL);
        }
}


/* Where side t has read up to: where PARTITION_EOF found its end while it
 * is there (past transaction markers), else the next offset expected. */
static int64_t side_position(const struct pair *p, int t) {
        return p->at_end[t] && p->end_pos[t] > p->expect[t] ? p->end_pos[t] : p->expect[t];
}

/* The high watermark of side t's partition in the broker's last fetch
 * answer, or -1 when none came since the pair became ready (the handle's may
 * be left from an earlier ownership). */
static int64_t side_end(const struct intake *in, const struct pair *p, int t) {
        int64_t lo, hi;

        if (!p->heard[t] || rd_kafka_get_watermark_offsets(input_handle(in, t), topic_of(in, t), p->partition, &lo,
                                                           &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
                return -1;
        return hi >= 0 ? hi : -1;
}

/* Has side t read all its partition holds, as far as the broker's last
 * fetch answer tells (Kafka Streams' test, KIP-695)?  An open transaction
 * keeps the high watermark ahead of what read_committed delivers: the side
 * has not caught up until it is decided. */
static bool fetch_caught_up(const struct intake *in, const struct pair *p, int t) {
        int64_t end = side_end(in, p, t);

        return end >= 0 && side_position(p, t) >= end;
}

/* Has side t caught up, by its last fetch answer and by the broker's last
 * answer to confirm_ends, whichever is further? */
static bool side_caught_up(const struct intake *in, const struct pair *p, int t) {
        return fetch_caught_up(in, p, t) && side_position(p, t) >= p->broker_end[t];
}

/* May `head`, the first message of a pair's lone side, go on without the
 * other, empty side?  Once it has waited merge_wait (as Kafka Streams
 * applies max.task.idle.ms), that side has caught up, and the broker said
 * so after head arrived: every earlier event of that side in Kafka when
 * head came is read.  Until then (start-up, lag, a slow fetch answer, the
 * leader unavailable) it waits, for as long as it takes: order comes before
 * progress.  merge_wait is asked first: the rest asks librdkafka. */
static bool patience_over(const struct intake *in, const struct pair *p, int empty_side,
                          const struct inmsg *head, int64_t now) {
        return now - head->arrived >= in->env->cfg->merge_wait && p->end_asked_at[empty_side] > head->arrived &&
               side_caught_up(in, p, empty_side);
}

#define LONG_WAIT_MS 10000           /* a side waiting this long for the other is logged, */
#define LONG_WAIT_LOG_MS 30000       /* at most once per this per pair */

/* The first message of side t of p that the merge will have to take alone,
 * once side !t's buffered messages are merged (its head when side !t is
 * empty), if it has waited merge_wait; NULL otherwise.  Asked ahead, the
 * broker's answer is in when the batch reaches it. */
static const struct inmsg *lone_head(const struct intake *in, const struct pair *p, int t, int64_t now) {
        const struct msgq *q = &p->q[t], *o = &p->q[!t];
        size_t i;

        if (p->phase != PAIR_READY || !q_len(q))
                return NULL;
        i = q->tail;
        if (q_len(o)) {         /* after the other side's last, a relationship first on a tie */
                int64_t last = o->v[o->tail - 1]->timestamp;
                while (i > q->head && (q->v[i - 1]->timestamp > last || (t == SUB && q->v[i - 1]->timestamp == last)))
                        i--;
                if (i == q->tail)
                        return NULL;
        } else {
                i = q->head;
        }
        return now - q->v[i]->arrived >= in->env->cfg->merge_wait ? q->v[i] : NULL;
}

#define END_ASK_AGAIN_MS 1000        /* a side the broker found behind is asked again after this */

/* Must the broker be asked for side t's end, and asked after when?  When
 * the other side's head has waited merge_wait and t's last fetch answer
 * says it has caught up (if not, the merge waits anyway): asked after that
 * head arrived, unless it has been; a side the broker found behind, again
 * every END_ASK_AGAIN_MS, in case its end went back (an unclean leader
 * election).  The time, or -1: no question. */
static int64_t end_unconfirmed(const struct intake *in, const struct pair *p, int t, int64_t now) {
        const struct inmsg *head = lone_head(in, p, !t, now);

        if (!head || !fetch_caught_up(in, p, t))
                return -1;
        if (p->end_asked_at[t] <= head->arrived)
                return head->arrived;
        if (side_position(p, t) < p->broker_end[t] && now - p->end_asked_at[t] >= END_ASK_AGAIN_MS)
                return p->end_asked_at[t];
        return -1;
}

/* Records the broker's end of side t of p, asked at asked_at; logs a side
 * it finds behind (the fetch answer was old), every LONG_WAIT_LOG_MS at
 * most per side. */
static void note_end(struct intake *in, struct pair *p, int t, int64_t end, int64_t asked_at) {
        int64_t pos = side_position(p, t);

        p->broker_end[t] = end;
        p->end_asked_at[t] = asked_at;
        in->env->st.merge_end_queries++;
        if (end <= pos)
                return;
        in->env->st.merge_ends_ahead++;
        if (p->end_logged_at[t] && asked_at - p->end_logged_at[t] < LONG_WAIT_LOG_MS)
                return;
        p->end_logged_at[t] = asked_at;
        log_notice("partition %" PRId32 ": %s read to offset %" PRId64 ", the broker's end is %" PRId64
                   " (its last fetch answer said caught up); the merge waits for it",
                   p->partition, topic_of(in, t), pos, end);
}

/* For every pair whose other side waits on side t: takes in the broker's
 * latest answer for t's end, then wants the question end_unconfirmed
 * names asked (end_probe.c asks it on a thread of its own: a slow broker
 * never stops this loop).  Returns how many questions are awaited, so that
 * a batch is not cut by an answer a few ms away (poll_inputs).  Can't
 * fail. */
static size_t confirm_ends(struct intake *in, int t) {
        int64_t now = mono_ms();
        size_t pending = 0;

        for (size_t i = 0; in->env->end_probe && i < in->pairs->n; i++) {
                struct pair *p = in->pairs->v[i];
                int64_t since, end, asked_at;
                if (!lone_head(in, p, !t, now))
                        continue;
                if (mcd_end_probe_answer(in->env->end_probe, t, p->partition, &end, &asked_at) == 0 &&
                    asked_at > p->end_asked_at[t])
                        note_end(in, p, t, end, asked_at);
                if ((since = end_unconfirmed(in, p, t, now)) >= 0) {
                        mcd_end_probe_want(in->env->end_probe, t, p->partition, since);
                        pending++;
                }
        }
        return pending;
}

/* Logs that side t of a pair has waited `waited` ms for the other, empty
 * side, and why, once past LONG_WAIT_MS and then every LONG_WAIT_LOG_MS at
 * most: the operator sees why the partition is not progressing. */
static void merge_wait_log(struct intake *in, struct pair *p, int t, int64_t waited, int64_t mono_now) {
        int64_t end;

        if (waited < LONG_WAIT_MS || (p->wait_logged && mono_now - p->wait_logged < LONG_WAIT_LOG_MS))
                return;
        end = side_end(in, p, !t);
        if (end >= 0 && p->broker_end[!t] > end)
                end = p->broker_end[!t];
        p->wait_logged = mono_now;
        p->wait_since = mono_now - waited;
        p->wait_for = !t;
        if (end < 0)
                log_warning("partition %" PRId32 ": %zu messages of %s have waited %" PRId64 " s for %s, "
                            "which has not answered a fetch yet; the merge waits for it",
                            p->partition, q_len(&p->q[t]), topic_of(in, t), waited / 1000, topic_of(in, !t));
        else if (side_position(p, !t) >= end)
                log_warning("partition %" PRId32 ": %zu messages of %s have waited %" PRId64 " s for %s, "
                            "read to offset %" PRId64 ", its end by its last fetch answer, which the broker "
                            "has not confirmed; the merge waits for it",
                            p->partition, q_len(&p->q[t]), topic_of(in, t), waited / 1000, topic_of(in, !t),
                            end);
        else
                log_warning("partition %" PRId32 ": %zu messages of %s have waited %" PRId64 " s for %s, "
                            "read up to offset %" PRId64 " of %" PRId64 "; the merge waits for it",
                            p->partition, q_len(&p->q[t]), topic_of(in, t), waited / 1000, topic_of(in, !t),
                            side_position(p, !t), end);
}

/* Takes the next message of a pair in timestamp order (a relationship first
 * on a tie), or NULL when the order is not known yet. */
struct inmsg *merge_next(struct intake *in, struct pair *p, int *topic, int64_t mono_now) {
        struct msgq *r = &p->q[REL], *s = &p->q[SUB];
        int t;

        if (q_len(r) && q_len(s)) {
                t = r->v[r->head]->timestamp <= s->v[s->head]->timestamp ? REL : SUB;
        } else if (q_len(r) || q_len(s)) {
                int64_t waited;
                t = q_len(r) ? REL : SUB;
                waited = mono_now - p->q[t].v[p->q[t].head]->arrived;
                if (!patience_over(in, p, !t, p->q[t].v[p->q[t].head], mono_now)) {
                        merge_wait_log(in, p, t, waited, mono_now);
                        return NULL;
                }
        } else {
                return NULL;
        }
        if (p->wait_logged) {
                log_notice("partition %" PRId32 ": merging again after waiting %" PRId64 " s for %s", p->partition,
                           (mono_now - p->wait_since) / 1000, topic_of(in, p->wait_for));
                p->wait_logged = 0;
        }
        *topic = t;
        return p->q[t].v[p->q[t].head++];
}


/* About how many buffered messages the merge could take now: while both
 * sides of a pair hold messages, those up to the earlier of the two sides'
 * last timestamps; a lone side, all of it once its patience is over. */
size_t mergeable(const struct intake *in) {
        int64_t mono_now = mono_ms();
        size_t n = 0;

        for (size_t i = 0; i < in->pairs->n; i++) {
                const struct pair *p = in->pairs->v[i];
                const struct msgq *r = &p->q[REL], *s = &p->q[SUB];
                int t = q_len(r) ? REL : SUB;

                if (p->phase != PAIR_READY)
                        continue;
                if (q_len(r) && q_len(s)) {
                        int64_t upto = r->v[r->tail - 1]->timestamp;
                        if (s->v[s->tail - 1]->timestamp < upto)
                                upto = s->v[s->tail - 1]->timestamp;
                        n += count_until(r, upto) + count_until(s, upto);
                } else if (q_len(&p->q[t]) && patience_over(in, p, !t, p->q[t].v[p->q[t].head], mono_now)) {
                        n += q_len(&p->q[t]);
                }
        }
        return n;
}

/* A pair is idle when both sides reached their partition's end, nothing is
 * buffered and nothing arrived for merge_wait: only then may the wall clock fire its timers, so that input
 * replayed from history fires them in stream time, exactly as replay does. */
bool pair_idle(const struct intake *in, const struct pair *p) {
        return p->phase == PAIR_READY && !p->clog_failed && p->at_end[REL] && p->at_end[SUB] &&
               q_len(&p->q[REL]) == 0 && q_len(&p->q[SUB]) == 0 && mono_ms() - p->last_arrival >= in->env->cfg->merge_wait;
}
