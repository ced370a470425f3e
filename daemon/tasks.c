/* tasks.c -- ownership of the pairs: rebalances, claims, fencing, restarts
 * (tasks.h).
 *
 * DESIGN: co-partitioning.  The group subscribes to the relationships topic
 * (the cooperative-sticky assignor balances it); the subscriptions partition
 * with the same number follows its owner through a second, assign()-only
 * handle, as Kafka Streams co-partitions a join.  An assigned partition
 * becomes a pair in INIT; pair_init claims it in Redis (a new owner
 * generation, which fences the previous owner's commits), restores it
 * (restore.h) and seeks both sides to the stored offsets.  A revoke first
 * publishes what was committed; a lost assignment does not (a zombie's
 * frames are the new owner's to reconcile). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/group_offsets.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/runtime.h"
#include "daemon/store.h"
#include "daemon/tasks.h"

/* A pair given up (revoked, lost, or at teardown): out of the group
 * offsets' copy and of sub_reader's assignment, then freed. */
void pair_remove(struct tasks *tm, int32_t partition) {
        struct pair *p = pair_find(tm->pairs, partition);

        if (!p)
                return;
        mcd_group_offsets_forget(tm->env->group_offsets, partition);
        sub_stop(tm->in, p);
        clog_drop(tm->pub, partition, 0);       /* its next owner appends them (clog_owed.h) */
        pairs_drop(tm->pairs, partition);
}

/* The revoked partition's part of a hand-over commit, in *sp: 0 when it has
 * nothing to trim (or is not ready). */
static int hand_over_part(const struct pair *p, struct mcd_store_partition *sp) {
        if (!p || p->phase != PAIR_READY || (p->untrimmed == 0 && p->clog_untrimmed == 0 && p->n_clog_forget == 0))
                return 0;
        *sp = (struct mcd_store_partition){
                .partition = p->partition,
                .generation = p->generation,
                .seq = p->seq,
                .offsets = p->committed,
                .trim = p->untrimmed,
                .clog_trim = p->clog_untrimmed,
                .clog_forget = p->clog_forget,
                .n_clog_forget = p->n_clog_forget,
        };
        return 1;
}

static void log_untrimmed(int level, size_t n, const char *why) {
        mcd_log(level, "handing %zu partition(s) over untrimmed (%s): the next owner reconciles their outboxes "
                "and appends what they owe", n, why);
}

/* Revoked partitions handed over clean (a rebalance, or the stop): once
 * all that was committed is delivered, outputs and changelog records alike,
 * one commit that only trims (fenced, as every commit), so that the next
 * owner finds no delivered frame to reconcile and nothing owed to append
 * again.  Anything short of that is left to the next owner, as after a
 * crash.  This function can't fail. */
static void hand_over(struct tasks *tm, const rd_kafka_topic_partition_list_t *parts) {
        struct mcd_store_partition *sp = calloc((size_t)parts->cnt + 1, sizeof(*sp));
        struct mcd_store_batch b = {.partitions = sp};
        int r;

        if (!sp || publish_drain(tm->pub, 10000) < 0) {
                log_untrimmed(LOG_INFO, (size_t)parts->cnt,
                              sp ? "outputs or changelog records still outstanding" : "out of memory");
                free(sp);
                return;
        }
        for (int i = 0; i < parts->cnt; i++)
                b.n_partitions += (size_t)hand_over_part(pair_find(tm->pairs, parts->elems[i].partition),
                                                         &sp[b.n_partitions]);
        if (b.n_partitions > 0 && (r = mcd_store_commit(tm->env->store, &b)) < 0) {
                log_untrimmed(LOG_WARNING, b.n_partitions, mcd_store_strerror(r));
        } else if (b.n_partitions > 0) {
                for (size_t i = 0; i < b.n_partitions; i++) {
                        struct pair *p = pair_find(tm->pairs, sp[i].partition);
                        p->seq++;
                        p->untrimmed = p->clog_untrimmed = 0;
                        pair_forget_lost(p, NULL, 0);
                        group_note(tm, p);      /* its counter, in the flush that follows */
                }
                log_info("handing %zu partition(s) over: delivered frames and changelog records trimmed",
                         b.n_partitions);
        }
        free(sp);
}

/* Another instance owns the partition now: nothing more is read for it
 * until the rebalance takes it away; it is never claimed back. */
static void pair_fence(struct tasks *tm, struct pair *p) {
        q_clear(&p->q[REL]);
        q_clear(&p->q[SUB]);
        pair_set_phase(tm->pairs, p, PAIR_FENCED);
        clog_drop(tm->pub, p->partition, 0);    /* the new owner appends them (clog_owed.h) */
        mcd_group_offsets_forget(tm->env->group_offsets, p->partition);
        set_paused(tm->in, p, true);
        sub_stop(tm->in, p);
}

/* After a commit refused as stale: if Redis says another instance has
 * claimed the partition since, the pair is fenced (the rebalance takes it
 * away; it is never claimed back) and true returned. */
bool fence_if_taken(struct tasks *tm, struct pair *p) {
        int64_t gen = 0;

        if (mcd_store_generation(tm->env->store, p->partition, &gen) < 0 || gen == p->generation)
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
        pair_fence(tm, p);
        return true;
}

/* Back to INIT: buffered messages dropped, re-read from Redis's offsets.
 * Frames of the partition not yet handed to the producer are dropped too:
 * the outbox in Redis still holds them (and INIT reconciles it), or Redis
 * lost them with the state that made them, which re-processing re-derives;
 * sending them as well would publish them twice.  The changelog records of
 * their batches are held until it is known which (clog_hold). */
void pair_restart(struct tasks *tm, struct pair *p) {
        uint64_t first_dropped = publish_drop_unsent(tm->pub, p->partition);

        if (first_dropped < p->clog_hold)
                p->clog_hold = first_dropped;
        q_clear(&p->q[REL]);
        q_clear(&p->q[SUB]);
        pair_set_phase(tm->pairs, p, PAIR_INIT);
        mcd_group_offsets_forget(tm->env->group_offsets, p->partition);
        set_paused(tm->in, p, true);
}

void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                  void *opaque) {
        struct tasks *tm = opaque;
        rd_kafka_error_t *e = NULL;

        switch (err) {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
                tm->group_synced = true;
                log_debug("rebalance: %d partition(s) assigned", parts->cnt);
                e = rd_kafka_incremental_assign(rk, parts);
                for (int i = 0; i < parts->cnt; i++) {
                        struct pair *p = pair_add(tm->pairs, parts->elems[i].partition);
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
                 * aborted by now: callbacks run between batches).  So do
                 * the offsets Redis holds, to the group, for lag monitors
                 * (unless this is a close during a join): sent before the
                 * unassign, they carry this generation; never waited for
                 * (librdkafka holds the rejoin until the answer, one round
                 * trip). */
                if (!rd_kafka_assignment_lost(rk)) {
                        if (publish_pending(tm->pub, 10000) < 0)
                                log_warning("handing partitions over with %zu frames unpublished; the next owner "
                                            "publishes them", publish_owed_frames(tm->pub));
                        else
                                hand_over(tm, parts);
                        publish_save_lost(tm->pub);
                        mcd_group_offsets_flush(tm->env->group_offsets, rk, mono_ms(), true);
                }
                for (int i = 0; i < parts->cnt; i++) {
                        log_notice("partition %" PRId32 " revoked%s", parts->elems[i].partition,
                                   rd_kafka_assignment_lost(rk) ? " (assignment lost)" : "");
                        pair_remove(tm, parts->elems[i].partition);
                }
                e = rd_kafka_incremental_unassign(rk, parts);
                break;
        default:
                log_error("rebalance failed: %s", rd_kafka_err2str(err));
                for (size_t i = tm->pairs->n; i > 0; i--)
                        pair_remove(tm, tm->pairs->v[i - 1]->partition);
                e = rd_kafka_incremental_unassign(rk, parts);
        }
        if (e) {
                log_error("rebalance: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
}

/* The group's answer to a copy of Redis's offsets (group_offsets.h). */
void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque) {
        struct tasks *tm = opaque;

        mcd_group_offsets_answer(tm->env->group_offsets, err, offsets);
}


/* The first offsets of side t of every pair being claimed in this round
 * (INIT or RECONCILE), asked in one request, not one per pair: a start of
 * 64 partitions with nothing stored asked 128 times, each waiting behind
 * the consumer's fetches.  Asked of the producer's connection, which has no
 * fetch to wait behind.  Once a round, whatever the answer: a pair left
 * without its own asks for it alone (start_offset).  tasks_claim forgets
 * them when the round ends. */
static void read_first_offsets(struct tasks *tm, int t) {
        int32_t *parts = calloc(tm->pairs->n + 1, sizeof(*parts));
        int64_t *lo = calloc(tm->pairs->n + 1, sizeof(*lo));
        int n = 0, r = -ENOMEM;

        tm->first_read[t] = true;
        for (size_t i = 0; parts && lo && i < tm->pairs->n; i++) {
                const struct pair *q = tm->pairs->v[i];
                if (q->phase == PAIR_INIT || q->phase == PAIR_RECONCILE)
                        parts[n++] = q->partition;
        }
        if (parts && lo)
                r = mcd_kafka_watermarks(tm->env->producer, topic_of(tm->in, t), parts, n, lo, NULL, 5000);
        for (int i = 0; r != -ENOMEM && i < n; i++)
                pair_find(tm->pairs, parts[i])->first[t] = lo[i];       /* -1: not answered */
        if (r < 0)
                log_debug("the first offsets of %d %s partition(s) in one request: %s; asked one by one", n,
                          topic_of(tm->in, t), strerror(-r));
        free(parts);
        free(lo);
}

/* Where a side starts reading: its stored offset, or the partition's first
 * offset when nothing was stored, asked of the broker (read_first_offsets,
 * for all the pairs of the round at once, else for this one).  Always a
 * concrete offset: librdkafka resolves a logical one (BEGINNING) by a
 * ListOffsets query of its own, whose reply the seek and resume around a
 * pair's start make outdated (its debug log shows the query restarted), and
 * the pair's first offset is then known before anything is fetched. */
static int start_offset(struct tasks *tm, struct pair *p, int t, int64_t stored, int64_t *out) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err;

        if (stored >= 0) {
                *out = stored;
                return 0;
        }
        if (p->first[t] < 0 && !tm->first_read[t])
                read_first_offsets(tm, t);
        if (p->first[t] >= 0) {
                *out = p->first[t];
                return 0;
        }
        err = rd_kafka_query_watermark_offsets(tm->env->producer, topic_of(tm->in, t), p->partition, &lo, &hi, 5000);
        if (err) {
                log_warning("partition %" PRId32 ": cannot read where %s begins: %s", p->partition, topic_of(tm->in, t),
                            rd_kafka_err2str(err));
                return -EAGAIN;
        }
        *out = lo;
        return 0;
}

/* The pair's offsets, counter, generation and origin copied to the group. */
void group_note(struct tasks *tm, const struct pair *p) {
        const struct mcd_group_mark m = {.rel = p->committed.rel, .sub = p->committed.sub, .seq = p->seq,
                                         .generation = p->generation, .marks = p->origin_marks};

        mcd_group_offsets_note(tm->env->group_offsets, p->partition, &m);
}

/* A pair starting with nothing in Redis and nothing in the group's copy
 * (a new partition): the marks of the output topics now, before it produces
 * anything, go to the group with its first offsets, and are waited for.
 * They are where its outputs begin: should Redis be lost before its first
 * batch reaches the changelog, the rebuild looks its outputs up from there
 * (restore.c restore_origin), with no changelog scan of its own.  -EAGAIN:
 * try again (the member is joining the group, or the group refused). */
static int send_origin(struct tasks *tm, struct pair *p) {
        struct mcd_group_mark m = {.rel = p->expect[REL], .sub = p->expect[SUB], .seq = p->seq,
                                   .generation = p->generation};

        if (!tm->env->consumer || p->committed.rel >= 0 || p->committed.sub >= 0)
                return 0;
        if (!p->origin_marks && !(p->origin_marks = marks_format(tm->pub)))
                return -ENOMEM;
        m.marks = p->origin_marks;      /* made just now on a first try: the copy's point */
        mcd_group_offsets_note(tm->env->group_offsets, p->partition, &m);
        p->origin_unsent = mcd_group_offsets_send_now(tm->env->group_offsets, tm->env->consumer, p->partition) < 0;
        return p->origin_unsent ? -EAGAIN : 0;
}

/* The group's copy of the pairs about to be claimed, read in one request:
 * their last owners' commit counters, generations and origin marks
 * (group_offsets.h).  A pair whose copy could not be read waits for the
 * next round. */
static void read_group_marks(struct tasks *tm) {
        int32_t *parts = calloc(tm->pairs->n + 1, sizeof(*parts));
        struct mcd_group_mark *m = calloc(tm->pairs->n + 1, sizeof(*m));
        size_t n = 0;

        for (size_t i = 0; parts && m && i < tm->pairs->n; i++)
                if (tm->pairs->v[i]->phase == PAIR_INIT && !tm->pairs->v[i]->group_read)
                        parts[n++] = tm->pairs->v[i]->partition;
        if (n > 0 && (!tm->env->consumer || mcd_group_offsets_read(tm->env->group_offsets, tm->env->consumer,
                                                                   parts, n, 10000, m) >= 0))
                for (size_t i = 0; i < n; i++) {
                        struct pair *p = pair_find(tm->pairs, parts[i]);
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
 * fenced owner commit again).  A pair this instance claimed before (claimed
 * again after a stall, a Redis loss) that another instance claimed since is
 * fenced (-ESTALE): whether the group's copy names a later generation,
 * whatever an older Redis says, or Redis does, the copy not yet having it
 * (it is sent once the other's pair is ready); unless our last claim may
 * have been written with its answer lost, its generation Redis's.
 * -EAGAIN until the copy is read. */
static int claim(struct tasks *tm, struct pair *p) {
        int64_t floor = p->generation > p->group_generation ? p->generation : p->group_generation;
        int64_t ours = p->claim_unsure ? 0 : p->generation, gen = 0;
        int r;

        if (!p->group_read)
                return -EAGAIN;
        p->group_read = false;
        if (p->generation > 0 && p->group_generation > p->generation) {
                log_warning("partition %" PRId32 " was claimed by another instance (the consumer group's offsets "
                            "name generation %" PRId64 " > %" PRId64 "); fenced",
                            p->partition, p->group_generation, p->generation);
                pair_fence(tm, p);
                return -ESTALE;
        }
        r = mcd_store_claim(tm->env->store, p->partition, floor, ours, &gen);
        p->claim_unsure = r < 0 && r != -ESTALE && r != -ECONNREFUSED && r != -ENOMEM && r != -EACCES &&
                          r != -ENOSPC;        /* else sent, and its answer maybe lost */
        if (r == -ESTALE) {
                log_warning("partition %" PRId32 " was claimed by another instance (Redis names generation %" PRId64
                            " > %" PRId64 "); fenced", p->partition, gen, p->generation);
                pair_fence(tm, p);
        } else if (r >= 0) {
                p->generation = gen;
        }
        return r;
}

/* INIT -> READY: claim the partition (fencing any previous owner), seek to
 * the stored offsets, reconcile the outbox. */
int pair_init(struct tasks *tm, struct pair *p) {
        int64_t known_seq;
        bool stored;
        int r;

        if (p->phase == PAIR_INIT) {
                r = claim(tm, p);
                if (r < 0)
                        return r;
                p->origin_unsent = false;
                pair_set_phase(tm->pairs, p, PAIR_RECONCILE);
        }
        /* What this owner committed, if it owned the pair before, or the
         * last owner did by the group's copy. */
        known_seq = p->seq > p->seq_floor ? p->seq : p->seq_floor;
        p->seq_floor = known_seq;       /* kept should this attempt fail after p->seq is Redis's */
        /* No offsets: Redis is new or lost the partition, or a rebuild was
         * cut short (the restore writes them last).  A failed rebuild is
         * tried again (pair_init_failed). */
        redo_forget(p);
        r = mcd_store_offsets_stored(tm->env->store, p->partition, &stored);
        if (r >= 0 && !stored)
                r = rebuild_partition(tm->rs, p);
        if (r < 0)
                return r;
        r = mcd_store_get_offsets(tm->env->store, p->partition, &p->committed, &p->seq);
        if (r >= 0 && !stored && p->seq < known_seq)    /* rebuilt: the counter goes on from the last owner's */
                r = raise_seq(tm->rs, p, known_seq);
        if (r >= 0 && stored && p->seq < known_seq) {
                log_error("partition %" PRId32 ": Redis's commit counter is %" PRId64 ", ours %" PRId64
                          ": Redis came back older than our commits",
                          p->partition, p->seq, known_seq);
                p->rolled_back = true;
        }
        p->rolled_back = p->rolled_back && stored;     /* a rebuild re-processes under its own record */
        if (r >= 0 && stored)
                r = p->rolled_back ? rollback_redo(tm->rs, p, known_seq) : redo_check(tm->rs, p);
        if (r < 0)
                return r;
        p->next = p->committed;
        p->untrimmed = 0;
        p->clog_untrimmed = 0;          /* the repair drops the owed list */
        r = pair_reconcile(tm->rs, p);
        if (r >= 0)
                r = pair_clog_repair(tm->rs, p);
        if (r < 0)
                return r;
        if ((r = start_offset(tm, p, REL, p->committed.rel, &p->expect[REL])) < 0 ||
            (r = start_offset(tm, p, SUB, p->committed.sub, &p->expect[SUB])) < 0)
                return r;
        if ((r = send_origin(tm, p)) < 0)
                return r;
        r = side_op(tm->in, p, REL, SIDE_SEEK, p->expect[REL]);
        if (r < 0)
                return r;
        q_clear(&p->q[REL]);
        q_clear(&p->q[SUB]);
        p->at_end[REL] = p->at_end[SUB] = p->heard[REL] = p->heard[SUB] = false;
        p->broker_end[REL] = p->broker_end[SUB] = -1;
        p->end_asked_at[REL] = p->end_asked_at[SUB] = p->end_logged_at[REL] = p->end_logged_at[SUB] = 0;
        p->wait_logged = 0;
        /* The rules' clock goes back with the offsets, as after a restart:
         * left at what was applied before (a batch lost with Redis, say),
         * it would fire timers early when those events are applied again. */
        p->stream_time = INT64_MIN;
        set_side_paused(tm->in, p, REL, false);
        set_side_paused(tm->in, p, SUB, false);
        r = sub_start(tm->in, p);
        if (r < 0)
                return r;
        pair_set_phase(tm->pairs, p, PAIR_READY);
        p->incarnation = tm->pairs->epoch;
        p->clog_hold = UINT64_MAX;      /* rebuilt, or its outbox reconciled */
        p->clog_from = tm->env->st.batches + 1;
        set_paused(tm->in, p, false);
        group_note(tm, p);
        mcd_group_offsets_hurry(tm->env->group_offsets, p->partition);        /* our generation, soon */
        log_notice("partition %" PRId32 " ready at offsets %" PRId64 "/%" PRId64 " (generation %" PRId64 ")",
                   p->partition, p->committed.rel, p->committed.sub, p->generation);
        return 0;
}

/* A pair that could not become ready.  Failures on Kafka's side are tried
 * again under the same claim.  A Redis that stopped answering, or lost its
 * data meanwhile, may have lost the claim as well, and a key of its of
 * another type holds consumption back (worker.c): the pair is claimed
 * again, and its offsets checked again for a rebuild; unless the claim was
 * lost to another instance, which fences it. */
void pair_init_failed(struct tasks *tm, struct pair *p, int r) {
        if (p->phase == PAIR_FENCED)
                return;
        if (redis_failed(tm->env, r)) {
                if (r == MCD_STORE_WRONG_TYPE)
                        log_warning("partition %" PRId32 ": not ready: a key of its in Redis is of another type",
                                    p->partition);
                pair_set_phase(tm->pairs, p, PAIR_INIT);
        } else if (r == -ESTALE || r == -ENODATA) {
                if (r == -ESTALE && fence_if_taken(tm, p))
                        return;
                log_warning("partition %" PRId32 ": Redis lost its claim; claiming it again", p->partition);
                pair_set_phase(tm->pairs, p, PAIR_INIT);
        } else {
                log_warning("partition %" PRId32 ": not ready yet: %s", p->partition, mcd_store_strerror(r));
        }
}


/* After Redis was connected to again (a restart, a failover), each ready
 * pair's commit counter is checked against what this owner committed: one
 * behind means Redis came back older, and the pair starts again: pair_init
 * finds the counter behind its own and re-processes (rollback_redo).  An idle daemon finds it so,
 * before a restart could forget what it committed. */
void rollback_watch(struct tasks *tm) {
        uint64_t conns = mcd_store_connections(tm->env->store);

        if (conns == tm->store_conns)
                return;
        tm->store_conns = conns;
        for (size_t i = 0; i < tm->pairs->n; i++) {
                struct pair *p = tm->pairs->v[i];
                struct mcd_offsets o;
                int64_t seq = 0;
                if (p->phase != PAIR_READY || p->seq == 0 ||
                    mcd_store_get_offsets(tm->env->store, p->partition, &o, &seq) < 0 || seq >= p->seq)
                        continue;
                pair_restart(tm, p);     /* pair_init finds the counter behind ours */
        }
}

/* A stop during a join: librdkafka 2.0's cooperative consumer, closed
 * between its JoinGroup and its SyncGroup's answer with no partition yet,
 * ends without a LeaveGroup (it leaves on an unassign, and there is none to
 * do).  The group then keeps the member until session.timeout.ms has
 * passed, and a rebalance meanwhile may hand it partitions it never takes.
 * So the join is waited out first, that long at most; what arrives meanwhile
 * is dropped, unprocessed (the next owner reads it from Redis's offsets). */
static void wait_join(struct tasks *tm) {
        rd_kafka_t *rk = tm->env->consumer;
        int64_t waited = mono_ms(), deadline = waited + mcd_kafka_session_timeout_ms(rk);

        if (!mcd_group_offsets_joining(tm->env->group_offsets))
                return;
        log_notice("stopping during a rebalance: waiting for its end, so that the group is left");
        while (mcd_group_offsets_joining(tm->env->group_offsets) && mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);   /* serves rebalance_cb */
                if (m)
                        rd_kafka_message_destroy(m);
                watchdog_kick();
        }
        waited = mono_ms() - waited;
        if (mcd_group_offsets_joining(tm->env->group_offsets))
                log_warning("the rebalance did not end within %" PRId64 " ms; the group drops this member "
                            "after session.timeout.ms", waited);
        else
                log_info("the rebalance ended after %" PRId64 " ms; leaving the group", waited);
}

/* librdkafka before 2.3.0 asserts in rd_kafka_destroy() when its
 * cooperative-sticky assignor has no state yet: a consumer that joined the
 * group but was stopped before its first assignment arrived (librdkafka
 * issue 4312), which wait_join can only make rarer.  The daemon would abort
 * instead of exiting 0.  Such a handle is not destroyed; it stays reachable
 * from kept_consumer, and the process exit, which follows, releases it. */
static rd_kafka_t *kept_consumer;
static struct mcd_group_offsets *kept_group_offsets;   /* its interceptors' opaque */

void tasks_leave(struct tasks *tm) {
        wait_join(tm);
        rd_kafka_consumer_close(tm->env->consumer);     /* revokes (rebalance_cb) and leaves */
        if (!tm->group_synced && rd_kafka_version() < 0x020300ff) {
                log_info("the consumer was closed before its first assignment; not destroyed "
                         "(librdkafka %s would abort: its issue 4312)", rd_kafka_version_str());
                kept_consumer = tm->env->consumer;
                kept_group_offsets = tm->env->group_offsets;
                tm->env->group_offsets = NULL;
        } else {
                rd_kafka_destroy(tm->env->consumer);
        }
        tm->env->consumer = NULL;
}

/* Whether claims may go on: the assignment is known current (group_offsets.h
 * mcd_group_offsets_member_current).  A member stalled past its session
 * (SIGSTOP, a worker held in long rebuilds) may have lost its partitions
 * to another instance that claimed them since; a claim of ours then would
 * fence that owner for good, its pair never claimed back.  Claims wait
 * for the coordinator's next answer, and for librdkafka to have acted on
 * it (settled): it takes the assignment for lost if it is
 * (tests/daemon_zombie.sh, case claim).  Logged when the wait begins and
 * ends. */
static bool member_current(struct tasks *tm) {
        rd_kafka_t *rk = tm->env->consumer;
        int64_t silent = 0, session_ms = rk ? mcd_kafka_session_timeout_ms(rk) : 0;
        bool ok = !rk || (!rd_kafka_assignment_lost(rk) &&
                          mcd_group_offsets_member_current(tm->env->group_offsets, session_ms,
                                                           tm->claims_held_since != 0, &silent));

        if (!ok && !tm->claims_held_since && silent >= session_ms) {
                log_warning("claims wait: the consumer group last answered %" PRId64 " ms ago, past the session "
                            "timeout; the assignment may have been lost", silent);
                tm->claims_held_since = mono_ms();
        } else if (ok && tm->claims_held_since) {
                log_info("claims go on: the consumer group answered (after %" PRId64 " ms)",
                         mono_ms() - tm->claims_held_since);
                tm->claims_held_since = 0;
        }
        return ok;
}

static bool any_to_claim(const struct tasks *tm) {
        for (size_t i = 0; i < tm->pairs->n; i++)
                if (tm->pairs->v[i]->phase == PAIR_INIT || tm->pairs->v[i]->phase == PAIR_RECONCILE)
                        return true;
        return false;
}

void tasks_claim(struct tasks *tm) {
        int r;

        if (!any_to_claim(tm))
                return;
        fault_point(&tm->fault_stop_before_claim, ++tm->claim_rounds, "claim");
        if (!member_current(tm))
                return;
        read_group_marks(tm);
        for (size_t i = 0; i < tm->pairs->n; i++) {
                struct pair *p = tm->pairs->v[i];
                watchdog_kick();        /* each may wait seconds for a partition's leader */
                if ((p->phase == PAIR_INIT || p->phase == PAIR_RECONCILE) && !member_current(tm))
                        break;          /* a claim took past the session: the rest wait */
                if (p->phase == PAIR_INIT && !p->group_read)
                        continue;       /* the group's copy is read first (claim) */
                if (p->phase == PAIR_RECONCILE && p->origin_unsent &&
                    mcd_group_offsets_joining(tm->env->group_offsets))
                        continue;       /* the lookups before send_origin are not redone until it can send */
                if ((p->phase == PAIR_INIT || p->phase == PAIR_RECONCILE) && (r = pair_init(tm, p)) < 0)
                        pair_init_failed(tm, p, r);
        }
        for (size_t i = 0; i < tm->pairs->n; i++)       /* read again at the next claim */
                tm->pairs->v[i]->first[REL] = tm->pairs->v[i]->first[SUB] = -1;
        tm->first_read[REL] = tm->first_read[SUB] = false;
}

static void hook_fence(void *ctx, struct pair *p) {
        pair_fence(ctx, p);
}

static void hook_restart(void *ctx, struct pair *p) {
        pair_restart(ctx, p);
}

void tasks_init(struct tasks *tm) {
        tm->pairs->hooks = (struct pair_hooks){.fence = hook_fence, .restart = hook_restart, .ctx = tm};
}
