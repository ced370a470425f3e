/* group_offsets.h -- the input offsets Redis holds, copied to the daemon's
 * consumer group, so that the lag monitors operators run (kafka-consumer-
 * groups --describe, Burrow, kminion, kafka-lag-exporter), which read a
 * group's committed offsets, see how far the daemon has read.
 *
 * A copy, never the source of truth: Redis is the commit point and a
 * restart seeks to Redis's offsets.  Only offsets Redis held for a pair this
 * instance owned (just committed under its generation, or just claimed) are
 * sent, so the group is never ahead of Redis.  Both input topics go through
 * the group member's handle, the subscriptions side included: a commit
 * carries the member id and generation, without which a broker refuses it
 * while the group has members.
 *
 * Asynchronous, never waited for, and never while the member is joining
 * the group: librdkafka before 2.10 takes an ILLEGAL_GENERATION answer to a
 * commit for a lost assignment (its issue 4059), and a commit sent while
 * the member's JoinGroup is in flight carries the generation that join
 * replaces, so it gets that answer.  Seen in tests/daemon_group.sh before
 * this guard: as a third instance joined, the two others' rebalances failed
 * (one lost its assignment) and no partition moved until one left.  The guard
 * watches the member's own requests (librdkafka interceptors): from a
 * JoinGroup sent to the SyncGroup answered, offsets wait; and for a moment
 * after each Heartbeat or SyncGroup answer, either of which may start a join
 * whose JoinGroup librdkafka's main thread sends next (a commit queued in
 * that moment would follow it: seen once in tests/daemon_group.sh, in
 * CI).  At most once per interval besides, to spare the group coordinator
 * a write per batch; but a partition just claimed is sent at the next
 * flush (mcd_group_offsets_hurry), its new generation a fence for others.
 * Failures are counted and logged (a rebalance's at debug, others at info
 * when they start), and the offsets sent again at the next interval.
 *
 * One thing the copy is the truth for: how far the partition's commits went,
 * whatever Redis says now.  Each offset carries, as its metadata, the pair's
 * commit counter and generation at that commit; a commit that moved no
 * offset (timers only) is sent all the same, for its counter
 * (tests/daemon_rollback_timers.sh).  Redis can come back older
 * (a promoted replica, an old snapshot) after its owner is gone, with nobody
 * left who remembers the counter; the next owner reads the group's before
 * it claims (mcd_group_offsets_read): a counter there above Redis's is a
 * rollback, and a generation there is a floor for its claim.  The copy lags
 * Redis by the interval at most, so a rollback of less than that, with its
 * owner gone as well, goes unseen.
 *
 * Used by the worker thread only (the rebalance and commit callbacks run on
 * it, inside its polls of the consumer), but for the interceptors, which set
 * an atomic flag from librdkafka's broker threads. */
#ifndef MCD_GROUP_OFFSETS_H
#define MCD_GROUP_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

struct mcd_group_offsets;

/* What a commit of a pair's offsets says (group_offsets.h's DESIGN below):
 * the next offsets, and as the offsets' metadata the pair's commit counter
 * and generation in Redis when they were committed. */
struct mcd_group_mark {
        int64_t rel, sub;            /* next offsets, -1 none */
        int64_t seq;                 /* the commit counter (P off:<p> seq), 0 none */
        int64_t generation;          /* the owner's generation (gen:<p>), 0 none */
        char *marks;                 /* the output topics' marks stored with the offsets (worker.c's
                                      * form, no spaces), NULL none: copied by note, heap from read */
};

/* The most metadata a commit carries; marks that would not fit are left out
 * (Kafka's offset.metadata.max.bytes is 4096 by default). */
#define MCD_GROUP_MARK_MAX 4000

/* Frees m->marks; the struct itself is the caller's. */
void mcd_group_mark_clear(struct mcd_group_mark *m);

/* The metadata's form; another tool's commit, without it, says nothing. */
#define MCD_GROUP_MARK_PREFIX "multichanneld/1 "

/* For partitions 0..n_partitions-1 of both input topics (the strings are
 * copied), sent at most once per interval_ms, the first an interval after
 * this call.  0 or -ENOMEM. */
int mcd_group_offsets_new(const char *rel_topic, const char *sub_topic, int32_t n_partitions, int interval_ms,
                          struct mcd_group_offsets **out);
void mcd_group_offsets_free(struct mcd_group_offsets *g);

/* The next offsets Redis holds for a partition pair the caller owns, with
 * its commit counter and generation, to be sent; a side at -1 (nothing
 * stored) is left out.  Replaces what was noted for the partition before. */
void mcd_group_offsets_note(struct mcd_group_offsets *g, int32_t partition, const struct mcd_group_mark *m);

/* Sends what is noted for the partition now and waits for the group's
 * answer: for a pair starting with nothing in Redis, so that the group
 * knows where its outputs begin before any is produced.  Sent even when a
 * flush sent the same offsets already: that answer, not waited for, may be
 * a refusal.  Within a moment of an answer that may start a join, waits
 * that moment out first (some 200 ms at most).
 * 0; -EAGAIN while the member is joining the group (try again); -EIO when
 * the group refused it, -ENOMEM. */
int mcd_group_offsets_send_now(struct mcd_group_offsets *g, rd_kafka_t *consumer, int32_t partition);

/* Sends from now on at most once per interval_ms.  g may be NULL. */
void mcd_group_offsets_set_interval(struct mcd_group_offsets *g, int interval_ms);

/* Whether the member is known to be in the group now: the coordinator
 * answered its Heartbeat or SyncGroup within session_ms (*silent_ms ago).
 * Else the member may have been dropped meanwhile (a stall past its
 * session, the process stopped) and its partitions given to another
 * instance, which librdkafka learns from the next answer.  `settled` also
 * asks that no join is in progress, nor an answer just in (whose error,
 * which an interceptor does not see, librdkafka's main thread acts on
 * within moments).  True when g is NULL. */
bool mcd_group_offsets_member_current(const struct mcd_group_offsets *g, int64_t session_ms, bool settled,
                                      int64_t *silent_ms);

/* The next flush sends the partition's offsets, if it has something to
 * send, without waiting for the interval to end (still never while the
 * member joins): a claim's generation, which another instance's claim
 * reads as the partition's latest.  g may be NULL. */
void mcd_group_offsets_hurry(struct mcd_group_offsets *g, int32_t partition);

/* The pair is fenced, restarted or gone: nothing more is sent for it until
 * it is noted again. */
void mcd_group_offsets_forget(struct mcd_group_offsets *g, int32_t partition);

/* Watches the group member's handle to be made from conf (call before
 * rd_kafka_new): its JoinGroup, Heartbeat and SyncGroup requests, from its
 * broker threads.  g must outlive that handle.  0 or -EINVAL. */
int mcd_group_offsets_watch(struct mcd_group_offsets *g, rd_kafka_conf_t *conf);

/* Sends, through the group member `consumer` and without waiting, the
 * offsets noted and not yet sent, once interval_ms has passed since the last
 * send (or at once when a partition was hurried), unless the member is
 * joining the group or may be about to.  `now` is for a rebalance
 * callback, during which librdkafka starts no join: at once, unless the
 * member is joining.
 * Returns how many offsets went, or a negative errno when librdkafka refused
 * them at once (counted as a failure). */
int mcd_group_offsets_flush(struct mcd_group_offsets *g, rd_kafka_t *consumer, int64_t mono_ms, bool now);

/* The group's answer to a send, as the consumer's offset_commit_cb gets it:
 * counted; the offsets it refused are sent again at the next flush. */
void mcd_group_offsets_answer(struct mcd_group_offsets *g, rd_kafka_resp_err_t err,
                              const rd_kafka_topic_partition_list_t *offsets);

/* What the group holds for n partition pairs, committed by whichever
 * instance owned each last: out[i] the largest commit counter and generation
 * of partitions[i]'s two sides (0 when none was committed, or by an earlier
 * version), their offsets (-1 none).  One request; waits for the
 * coordinator at most timeout_ms.  0, -ETIMEDOUT, -EIO (logged; also when
 * the answer for one partition is an error) or -ENOMEM. */
int mcd_group_offsets_read(const struct mcd_group_offsets *g, rd_kafka_t *consumer, const int32_t *partitions,
                           size_t n, int timeout_ms, struct mcd_group_mark *out);

/* Whether the member is joining the group: its JoinGroup sent, its
 * SyncGroup not yet answered.  Any thread; false for NULL. */
bool mcd_group_offsets_joining(const struct mcd_group_offsets *g);

/* Commits sent, and of them refused (at once or by the group). */
void mcd_group_offsets_counts(const struct mcd_group_offsets *g, uint64_t *sent, uint64_t *failed);

#endif
