/* restore.c -- reconciliation, the rebuild from the changelog, and the
 * re-processing record (restore.h).
 *
 * DESIGN: a pair becoming ready (tasks.c's pair_init) first makes Redis
 * right for it: no offsets stored means Redis is new or lost the partition,
 * and the changelog (compacted: each customer's latest state and the
 * partition's offsets record) is read back into it, the offsets last; then
 * the frames its outbox still holds go out, but those the output topics
 * already hold.  Events after the restored offsets are processed again
 * under a re-processing record (below). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/macro.h"
#include "daemon/restore.h"
#include "daemon/state_codec.h"
#include "daemon/store.h"
#include "daemon/strmap.h"


/* On taking a partition over: the frames its outbox still holds were
 * committed by the previous owner and maybe produced.  Those already on the
 * output topics (from the stored marks on) are skipped, the rest produced. */
int pair_reconcile(struct restorer *rs, struct pair *p) {
        void **frames = NULL;
        size_t *lens = NULL, n = 0;
        char *marks = NULL;
        int r;

        r = mcd_store_read_outbox(rs->env->store, p->partition, &frames, &lens, &n);
        if (r < 0)
                return r;
        if (n == 0)
                goto out;
        /* Frames still in flight reach the topics before they are read: one
         * that lands after the read would be produced a second time from
         * the outbox.  Still in flight after the wait: tried again later. */
        rd_kafka_flush(rs->env->producer, 30000);
        if (publish_in_flight(rs->pub, p->partition)) {
                log_warning("partition %" PRId32 ": frames still in flight; reconciled later", p->partition);
                r = -EAGAIN;
                goto out;
        }
        log_notice("partition %" PRId32 ": reconciling %zu outbox frames with the output topics", p->partition, n);
        r = mcd_store_get_marks(rs->env->store, p->partition, &marks);
        if (r >= 0)
                r = collect_published_after(rs->pub, marks, p->partition, NULL);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = pending_push(rs->pub, frames[i], lens[i], p->partition, 0);
                if (r >= 0)
                        frames[i] = NULL;
        }
        if (r >= 0)
                r = publish_pending(rs->pub, 30000);
        /* A delivery failed meanwhile: the pair starts again (publish.c
         * restart_failed), its frames dropped unpublished. */
        if (r >= 0 && p->phase != PAIR_RECONCILE)
                r = -EAGAIN;
out:
        mcd_store_frames_free(frames, lens, n);
        free(marks);
        return r;
}

/* ---------------------------------------------------- changelog repair -- */

/* The partition's offsets record as Redis holds it now, appended again
 * under key.  0 or an error. */
static int repair_offsets(struct restorer *rs, struct pair *p, const char *key) {
        char *marks = NULL, *val = NULL;
        struct mcd_offsets o;
        int64_t seq;
        int r;

        if ((r = mcd_store_get_offsets(rs->env->store, p->partition, &o, &seq)) >= 0 &&
            (r = mcd_store_get_marks(rs->env->store, p->partition, &marks)) >= 0 &&
            !(val = offsets_record(&o, marks)))
                r = -ENOMEM;
        if (val)
                changelog_append(rs->pub, p->partition, 0, key, val, strlen(val));
        free(marks);
        free(val);
        return r;
}

/* Customers read per round trip by repair_customers. */
#define REPAIR_CHUNK 256

/* The states of the customers n changelog keys name, as Redis holds them
 * now, appended again under those keys (one it does not hold: nothing to
 * append), REPAIR_CHUNK to a round trip.  0 or an error. */
static int repair_customers(struct restorer *rs, struct pair *p, const char *const *keys, size_t n) {
        char *bufs[REPAIR_CHUNK], *val;
        const char *ids[REPAIR_CHUNK];
        size_t lens[REPAIR_CHUNK], len;
        int r = 0;

        for (size_t at = 0; r >= 0 && at < n; at += REPAIR_CHUNK) {
                size_t k = n - at < REPAIR_CHUNK ? n - at : REPAIR_CHUNK;
                for (size_t i = 0; i < k; i++)
                        ids[i] = changelog_key_customer(keys[at + i]);
                r = mcd_store_get_customers_raw(rs->env->store, ids, k, bufs, lens);
                for (size_t i = 0; i < k; i++) {
                        if (r >= 0 && bufs[i] &&
                            (r = mcd_state_record(p->partition, bufs[i], lens[i], &val, &len)) >= 0) {
                                changelog_append(rs->pub, p->partition, 0, keys[at + i], val, len);
                                free(val);
                        }
                        free(bufs[i]);
                }
        }
        return r;
}

/* Appends again what each of the keys names; keys is a set (struct
 * mcd_strmap, keys only).  0 or an error. */
static int repair_all(struct restorer *rs, struct pair *p, const struct mcd_strmap *keys) {
        char offsets_key[CHANGELOG_OFFSETS_KEY_SIZE];
        const char **customers = zalloc_array(keys->n + 1, sizeof(*customers));
        bool offsets = false;
        size_t n = 0;
        int r;

        if (!customers)
                return -ENOMEM;
        changelog_offsets_key(offsets_key, p->partition);
        for (size_t i = 0; i < keys->size; i++) {
                const char *key = mcd_strmap_at(keys, i, NULL);
                if (key && strcmp(key, offsets_key) == 0)
                        offsets = true;
                else if (key)
                        customers[n++] = key;
        }
        /* The offsets last, once the customers' records are delivered, as
         * a batch's records go (clog_owed.c clog_release): a changelog cut
         * short has no offsets past its customers.  One that failed stops
         * the pair (clog_failed), the offsets not appended. */
        r = repair_customers(rs, p, customers, n);
        if (r >= 0 && offsets && n > 0 && mcd_kafka_flush(rs->env->producer, 30000) < 0)
                r = -EAGAIN;
        if (r >= 0 && offsets && !p->clog_failed)
                r = repair_offsets(rs, p, offsets_key);
        free(customers);
        return r;
}

/* The keys to append again, each once: those whose append failed (the
 * set), then those the partition's commits still owe (the list). */
static int repair_keys(struct restorer *rs, struct pair *p, char ***lost, size_t *n_lost, char ***owed,
                       size_t *n_owed, size_t *elements, struct mcd_strmap *keys) {
        int r = mcd_store_clog_lost_get(rs->env->store, p->partition, lost, n_lost);

        if (r >= 0)
                r = mcd_store_clog_owed_get(rs->env->store, p->partition, owed, n_owed, elements);
        for (size_t i = 0; r >= 0 && i < *n_lost; i++)
                r = mcd_strmap_put_borrowed(keys, (*lost)[i], NULL);
        for (size_t i = 0; r >= 0 && i < *n_owed; i++)
                r = mcd_strmap_put_borrowed(keys, (*owed)[i], NULL);
        return r;
}

/* On claiming a partition: the changelog records whose append failed
 * (whichever instance saw it: mcd_store_clog_lost_add), and those its
 * commits owe, not known delivered (the last owner crashed, or lost the
 * partition, before it knew: clog_owed.h), are appended again, each as
 * Redis holds its key now -- the latest, so that compaction keeps it over
 * any older record -- and forgotten once delivered, by the pair's first
 * commit (a write here, unfenced, could delete a new owner's, were this
 * instance stalled past another's claim).  Until then the
 * changelog may be behind Redis, and a rebuild from it older than the
 * Redis it replaces.  After reconciliation: the outbox's frames are on the
 * output topics, and the changelog is never ahead of them.  Failing again,
 * the pair stops committing, as at the first failure (clog_failed), the
 * keys kept for its next claim.  0 or an error (the pair is not ready:
 * tried again). */
int pair_clog_repair(struct restorer *rs, struct pair *p) {
        char **lost = NULL, **owed = NULL;
        size_t n_lost = 0, n_owed = 0, elements = 0, n = 0;
        struct mcd_strmap keys = {0};
        int r = repair_keys(rs, p, &lost, &n_lost, &owed, &n_owed, &elements, &keys);

        n = keys.n;
        if (r >= 0 && n > 0)
                r = repair_all(rs, p, &keys);
        if (r >= 0 && n > 0 && mcd_kafka_flush(rs->env->producer, 30000) < 0)
                r = -EAGAIN;
        mcd_strmap_clear(&keys);
        if (r >= 0 && n > 0 && !p->clog_failed) {
                /* Forgotten by the claim's first commit, which is fenced. */
                pair_forget_lost(p, lost, n_lost);
                lost = NULL;
                p->clog_untrimmed = elements;
                log_notice("partition %" PRId32 ": appended again %zu changelog record(s) (%zu failed, %zu owed)",
                           p->partition, n, n_lost, n_owed);
        }
        mcd_store_ids_free(lost, n_lost);
        mcd_store_ids_free(owed, n_owed);
        return r;
}

/* ------------------------------------------------------------- rebuild -- */

/* The latest changelog record of each key that belongs to one partition. */
struct changelog_scan {
        int32_t partition;
        char offsets_key[CHANGELOG_OFFSETS_KEY_SIZE];
        struct mcd_strmap latest;    /* key -> struct scanned */
};

/* A record's value as scanned: its bytes, NUL-terminated too (an offsets
 * record, and a customer record of earlier versions, are JSON text). */
struct scanned {
        size_t len;
        char data[];
};

static void scan_free(struct changelog_scan *sc) {
        for (size_t i = 0; i < sc->latest.size; i++) {
                void *v;
                if (mcd_strmap_at(&sc->latest, i, &v))
                        free(v);
        }
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
static int scan_changelog(struct restorer *rs, struct changelog_scan *sc) {
        const char *topic = rs->env->cfg->topic_changelog;
        int n = mcd_kafka_partition_count(rs->env->producer, topic, 10000), remaining = 0, r = 0;
        rd_kafka_topic_partition_list_t *l;
        int64_t *end = NULL, *lo = NULL, deadline = mono_ms() + 120000;
        rd_kafka_t *rk;
        char err[512];

        if (n == -ENOENT)
                return 0;       /* no changelog yet: nothing was ever committed */
        if (n < 0)
                return n;
        end = calloc((size_t)n, sizeof(*end));
        lo = calloc((size_t)n, sizeof(*lo));
        l = rd_kafka_topic_partition_list_new(n);
        if (!end || !lo || !l) {
                r = -ENOMEM;
                goto out;
        }
        if (mcd_kafka_watermarks(rs->env->producer, topic, NULL, n, lo, end, 10000) < 0) {
                r = -EIO;
                goto out;
        }
        for (int q = 0; q < n; q++) {
                if (end[q] > lo[q]) {
                        rd_kafka_topic_partition_list_add(l, topic, q)->offset = RD_KAFKA_OFFSET_BEGINNING;
                        remaining++;
                }
        }
        if (remaining == 0)
                goto out;
        rk = mcd_kafka_new(rs->env->cfg, MCD_KAFKA_READER, NULL, err, sizeof(err));
        if (!rk) {
                r = -EINVAL;
                goto out;
        }
        rd_kafka_assign(rk, l);
        while (remaining > 0 && r >= 0 && mono_ms() < deadline && !*rs->env->stop) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                watchdog_kick();
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
        free(lo);
        if (l)
                rd_kafka_topic_partition_list_destroy(l);
        return r;
}

/* Re-processing a rebuilt partition.  The events after the restored
 * offsets are applied again, and the outputs they had before Redis was lost
 * may already be on the output topics after the restored marks: the
 * rebuild looks those up (collect_published_after) and publishing skips
 * them.  So may the outputs of the timers and park deadlines that fired in
 * the lost commits, due at the latest at the lookup's time (lookup_time,
 * raised by what re-processing and the lookup show: redo_cover): they fire
 * again once due here.  That lookup lives in memory, so Redis keeps where
 * it started (P redo:<p>), how far re-processing goes (the input
 * partitions' ends at the rebuild, below which lies everything processed
 * before the loss) and the lookup's time.  A start that finds the record
 * looks the outputs up again (redo_check), even past those ends: its
 * outbox may hold frames re-made from those events, unsent.  Meanwhile the
 * partition's commits and changelog records carry the record's marks, not
 * later ones, so that a second loss looks up as far back as the first.
 * The record goes once every side is re-processed, nothing of the
 * partition is due at or before the lookup's time, and every frame
 * committed for the partition is delivered (redo_settle).
 * (The record in memory: pair.h's redo fields.) */

/* A side is re-processed when its committed offset reached the recorded
 * end, or when it reached the partition's end with everything read
 * committed (the recorded end may count transaction markers, never read). */
static bool redo_side_done(const struct pair *p, int t) {
        int64_t until = t == REL ? p->redo_until.rel : p->redo_until.sub;
        int64_t committed = t == REL ? p->committed.rel : p->committed.sub;
        int64_t next = t == REL ? p->next.rel : p->next.sub;

        return until <= 0 || committed >= until || (p->at_end[t] && q_len(&p->q[t]) == 0 && committed == next);
}

/* The latest time the lost commits can have fired a timer or a deadline by,
 * as far as this instance knows at the lookup: the wall clock now, or the
 * pair's stream time when ahead of it (future-dated events), as this
 * instance left it before the rebuild or rollback (pair_init sets it back
 * after).  Another instance's clock may have run ahead of both: redo_cover
 * raises it once the lookup and re-processing show more.  This function
 * can't fail. */
static mcd_time_t lookup_time(const struct pair *p) {
        int64_t now = now_ms();

        return p->stream_time > now ? p->stream_time : now;
}

/* Before the restored offsets are written, and before the lookup.  A side
 * with nothing after the restored offset (or its first) is done already:
 * 0.  The record is written all the same: timers may have fired in the lost
 * commits.  Its time is the lookup's, or due_floor when later (an older
 * record's, raised by what its owner found). */
static int redo_mark(struct restorer *rs, struct pair *p, const char *marks, const struct mcd_offsets *restored,
                     mcd_time_t due_floor) {
        int64_t lo, hi, until[2], from[2] = {restored->rel, restored->sub};
        int r;

        for (int t = REL; t <= SUB; t++) {
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                        input_handle(rs->in, t), topic_of(rs->in, t), p->partition, &lo, &hi, 5000);
                if (err) {
                        log_warning("partition %" PRId32 ": cannot read where %s ends: %s", p->partition,
                                    topic_of(rs->in, t), rd_kafka_err2str(err));
                        return -EAGAIN;
                }
                until[t] = hi > (from[t] > lo ? from[t] : lo) ? hi : 0;
        }
        redo_forget(p);
        p->redo_until = (struct mcd_offsets){.rel = until[REL], .sub = until[SUB]};
        p->redo_due = lookup_time(p);
        if (due_floor > p->redo_due)
                p->redo_due = due_floor;
        if (!(p->redo_marks = strdup(marks ? marks : "")))
                return -ENOMEM;
        r = mcd_store_set_redo(rs->env->store, p->partition, p->generation, p->redo_marks, p->redo_until,
                               p->redo_due);
        p->redo = r >= 0;
        return r;
}

/* After a lookup: how far ahead of this clock the latest of the outcomes
 * looked up was made (by another instance's clock, or a stream time ahead)
 * logged.  r passed through. */
static int looked_up(const struct pair *p, int r) {
        int64_t now = now_ms();

        if (r >= 0 && p->redo_seen > now)
                log_notice("partition %" PRId32 ": the outcomes looked up were made by a clock up to %" PRId64
                           " ms ahead of this one", p->partition, p->redo_seen - now);
        return r;
}

/* An unreadable record is replaced by one that looks up from the start of
 * the output topics: where the lost commits began is not known. */
int redo_check(struct restorer *rs, struct pair *p) {
        char *marks = NULL;
        mcd_time_t due = 0;
        bool found;
        int r = mcd_store_get_redo(rs->env->store, p->partition, &found, &marks, &p->redo_until, &due);

        if (r == -EBADMSG) {
                log_warning("partition %" PRId32 ": its re-processing record is unreadable; the outputs are "
                            "looked up from the start of the output topics, under a new record", p->partition);
                r = redo_mark(rs, p, "", &p->committed, 0);
                return r < 0 ? r : looked_up(p, collect_published_after(rs->pub, "", p->partition, &p->redo_seen));
        }
        if (r < 0 || !found)
                return r;
        log_notice("partition %" PRId32 ": re-processing after a rebuild or a rollback not known done (offsets %" PRId64
                   "/%" PRId64 " of %" PRId64 "/%" PRId64 "); looking up what it already published",
                   p->partition, p->committed.rel, p->committed.sub, p->redo_until.rel, p->redo_until.sub);
        p->redo_due = due > 0 ? due : lookup_time(p);   /* an earlier version's has none: this lookup's */
        r = looked_up(p, collect_published_after(rs->pub, marks, p->partition, &p->redo_seen));
        if (r >= 0) {
                p->redo = true;
                p->redo_marks = marks;
                marks = NULL;
        }
        free(marks);
        return r;
}

int raise_seq(struct restorer *rs, struct pair *p, int64_t seq) {
        int r = mcd_store_raise_seq(rs->env->store, p->partition, seq);

        if (r >= 0 && seq > p->seq)
                p->seq = seq;
        return r;
}

/* Redis came back older than this owner's commits (a rollback: a promoted
 * replica, an old snapshot): what was committed since is on the output
 * topics, no longer in Redis.  The partition is re-processed from Redis's
 * offsets as after a rebuild, under a re-processing record from Redis's
 * marks (or an older record's, and no earlier than its time) to the
 * input's ends, so that whichever instance owns it next looks up what is
 * already published; and looked up now.  Its changelog records not yet
 * appended are dropped: those of the batches Redis still holds are on its
 * owed list, which the claim's repair appends as Redis holds them, and the
 * later ones re-processing derives again.  Appended after the repair, a
 * held offsets record would put the changelog's offsets past the older
 * customers the repair appended. */
int rollback_redo(struct restorer *rs, struct pair *p, int64_t known_seq) {
        struct mcd_offsets until;
        mcd_time_t due = 0;
        char *marks = NULL;
        bool found = false;
        int r = mcd_store_get_redo(rs->env->store, p->partition, &found, &marks, &until, &due);

        if (r == -EBADMSG || (r >= 0 && !found)) {
                free(marks);
                marks = NULL;
                r = mcd_store_get_marks(rs->env->store, p->partition, &marks);
        }
        log_notice("partition %" PRId32 ": re-processing from offsets %" PRId64 "/%" PRId64
                   " after Redis came back older; looking up what was already published",
                   p->partition, p->committed.rel, p->committed.sub);
        clog_drop(rs->pub, p->partition, 0);
        if (r >= 0)     /* what is in flight lands before the topics are read */
                r = mcd_kafka_flush(rs->env->producer, 30000);
        if (r >= 0)
                r = redo_mark(rs, p, marks, &p->committed, found ? due : 0);
        if (r >= 0)
                r = looked_up(p, collect_published_after(rs->pub, marks, p->partition, &p->redo_seen));
        if (r >= 0)             /* the counter goes on from ours, never back */
                r = raise_seq(rs, p, known_seq);
        if (r >= 0)
                p->rolled_back = false;
        free(marks);
        return r;
}

/* Whether something of p is due at or before its lookup's time: its
 * timers may be among the outputs looked up.  One held so for a minute (a
 * busy pair's stream time far behind, or a due entry that stays) is named
 * once: its commits carry the record's marks meanwhile.  1, 0 or a store
 * error. */
static int redo_due_left(struct restorer *rs, struct pair *p) {
        char **ids = NULL;
        int32_t *parts = NULL;
        size_t n = 0;
        int r = mcd_store_due(rs->env->store, &p->partition, &p->redo_due, 1, 1, &ids, &parts, &n, NULL);

        if (r < 0 && !redis_unreachable(r))     /* an unreachable Redis is logged by the loop */
                log_warning("partition %" PRId32 ": cannot read what is due: %s", p->partition, strerror(-r));
        else if (n > 0 && p->redo_held_since == 0 && p->redo_due <= now_ms())   /* not while due ahead of us */
                p->redo_held_since = mono_ms();
        else if (n > 0 && p->redo_held_since > 0 && mono_ms() - p->redo_held_since >= 60000) {
                log_warning("partition %" PRId32 ": its re-processing record is kept a minute now: customer %s "
                            "is due by the lookup's time and has not fired", p->partition, ids[0]);
                p->redo_held_since = -1;
        }
        mcd_store_ids_free(ids, n);
        free(parts);
        return r < 0 ? r : n > 0;
}

/* The ids reconciliations and rebuilds found on the output topics are
 * asked for by each frame produced (produce_frame): they matter while a
 * pair re-processes, and for frames not yet produced (a reconciliation's,
 * held back by a full producer queue).  Once neither is left they are
 * forgotten, or they would grow for the process's life; a later claim
 * looks its own up again.  This function can't fail. */
static void published_forget(struct restorer *rs) {
        struct publisher *pub = rs->pub;

        if (pub->published.n == 0)
                return;
        for (size_t i = 0; i < rs->pairs->n; i++)
                if (rs->pairs->v[i]->redo)
                        return;
        for (size_t i = 0; i < pub->n_pending; i++)
                if (!pub->pending[i]->sent)
                        return;
        log_notice("forgetting the %zu output ids looked up: no partition re-processes", pub->published.n);
        mcd_strmap_clear(&pub->published);
}

/* Once, when the input is re-processed: the lookup's time raised to what
 * re-processing and the lookup showed, and kept in the record (a later
 * owner may have nothing left to re-process).  That is the pair's stream
 * time (the lost commits' events, applied again here, and any later), and
 * the latest clock among the outcomes of the pair looked up
 * (collect_published): the rules' clock that made each, and its
 * producer's clock, after the timers it fired were due by that clock;
 * either may run ahead of ours (another instance's clock, an event dated
 * ahead).  Logged when ahead of ours.  0 or a store error (tried again a
 * second later; a refused write is the caller's). */
static int redo_cover(struct restorer *rs, struct pair *p) {
        mcd_time_t t = p->redo_seen > p->stream_time ? p->redo_seen : p->stream_time;
        int64_t now = now_ms();
        int r;

        if (p->redo_covered)
                return 0;
        if (t > p->redo_due) {
                r = mcd_store_raise_redo_due(rs->env->store, p->partition, p->generation, p->redo_marks, t);
                if (r < 0 && !redis_unreachable(r) && r != -ESTALE && r != -ENODATA)
                        log_warning("partition %" PRId32 ": cannot raise its re-processing record's time: %s",
                                    p->partition, mcd_store_strerror(r));
                if (r < 0)
                        return r;
                if (t > now)
                        log_notice("partition %" PRId32 ": the outputs looked up or the events re-processed run %"
                                   PRId64 " ms past this clock: re-processing is done once what is due by then "
                                   "has fired", p->partition, t - now);
                p->redo_due = t;
        }
        p->redo_covered = true;
        return 0;
}

/* The record of a pair whose input is re-processed raised, and dropped if
 * nothing holds it.  0 dropped, 1 held, or an error (-ESTALE or -ENODATA:
 * Redis names another generation of the partition, or none). */
static int redo_try_settle(struct restorer *rs, struct pair *p) {
        int r = redo_cover(rs, p);

        if (r < 0)
                return r;
        if (publish_owed(rs->pub, p->partition))
                return 1;
        if ((r = redo_due_left(rs, p)) != 0)
                return r;
        if ((r = mcd_store_clear_redo(rs->env->store, p->partition, p->generation)) < 0)
                return r;
        redo_forget(p);
        log_info("partition %" PRId32 ": re-processing after the rebuild or rollback done", p->partition);
        return 0;
}

/* Once a second: Redis is asked what is due for each pair that could
 * settle.  One whose record Redis refused to write under its generation
 * is claimed again (and fenced, if another instance claimed it). */
void redo_settle(struct restorer *rs) {
        if (mono_ms() < rs->next_settle)
                return;
        rs->next_settle = mono_ms() + 1000;
        for (size_t i = 0; i < rs->pairs->n; i++) {
                struct pair *p = rs->pairs->v[i];
                int r;
                if (!p->redo || p->phase != PAIR_READY || !redo_side_done(p, REL) || !redo_side_done(p, SUB))
                        continue;
                r = redo_try_settle(rs, p);
                if (r == -ESTALE || r == -ENODATA) {
                        log_warning("partition %" PRId32 ": its re-processing record refused: Redis holds %s "
                                    "generation, not ours (%" PRId64 "); claimed again", p->partition,
                                    r == -ESTALE ? "another" : "no", p->generation);
                        pairs_restart(rs->pairs, p);
                }
        }
        published_forget(rs);
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

/* A partition the changelog holds no offsets for is re-processed from its
 * beginning.  Its first batches may be on the output topics all the same
 * (Redis lost after their delivery, before their changelog records): when
 * the group's copy names where its outputs begin (tasks.c send_origin), they
 * are looked up from there, under a re-processing record as after any
 * rebuild. */
static int restore_origin(struct restorer *rs, struct pair *p, int64_t *from[2]) {
        const struct mcd_offsets none = {.rel = -1, .sub = -1};

        if (!p->origin_marks)
                return 0;
        log_notice("partition %" PRId32 ": the changelog holds nothing of it, the consumer group says where its "
                   "outputs begin: looking them up from there", p->partition);
        marks_parse(rs->pub, p->origin_marks, from);
        return redo_mark(rs, p, p->origin_marks, &none, 0);
}

/* Whether key is an earlier version's key of a customer whose id starts
 * with "__" (the id itself) that has a record under the escaped key too:
 * the old key is never written again, compaction keeps both, and the
 * escaped one is the later.  -ENOMEM, 1 or 0. */
static int superseded(const struct changelog_scan *sc, const char *key) {
        char *escaped;
        int r;

        if (!changelog_escaped(key) || changelog_key_customer(key) != key)
                return 0;
        if (!(escaped = changelog_customer_key(key)))
                return -ENOMEM;
        r = mcd_strmap_get(&sc->latest, escaped) != NULL;
        free(escaped);
        return r;
}

/* Writes the scanned customers of a partition back to Redis, in chunks,
 * the offsets and marks last. */
static int restore_partition(struct restorer *rs, struct pair *p, struct changelog_scan *sc, int64_t *from[2]) {
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
                void *v = NULL;
                const char *key = last ? NULL : mcd_strmap_at(&sc->latest, i, &v);
                int old = key ? superseded(sc, key) : 0;
                if (old < 0) {
                        r = old;
                        break;
                }
                if (old > 0)
                        continue;
                if (key && strcmp(key, sc->offsets_key) != 0) {
                        char why[256] = "";
                        if (record_state(v, &cs[n], why, sizeof(why)) == 0) {
                                sc_items[n] = (struct mcd_store_customer){.customer = &cs[n],
                                                                          .partition = p->partition};
                                n++;
                        } else {
                                log_error("changelog record of customer %s is unreadable (%s); skipped",
                                          key, why);
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
                                        marks_parse(rs->pub, marks, from);
                                        r = redo_mark(rs, p, marks, &sp.offsets, 0);
                                } else {
                                        log_error("partition %" PRId32 ": the changelog's offsets record is unreadable",
                                                  p->partition);
                                        r = -EBADMSG;
                                }
                                json_decref(rec);
                        } else if (last) {
                                sp.offsets = (struct mcd_offsets){.rel = -1, .sub = -1};
                                r = restore_origin(rs, p, from);
                        }
                        sp.set_offsets = last;
                        if (r < 0)
                                break;
                        b.n_customers = n;
                        r = mcd_store_commit(rs->env->store, &b);
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
int rebuild_partition(struct restorer *rs, struct pair *p) {
        struct changelog_scan sc = {.partition = p->partition};
        const int *n_out = rs->pub->n_out_parts;
        int64_t *from[2] = {calloc((size_t)n_out[0] + 1, 8), calloc((size_t)n_out[1] + 1, 8)};
        int r = 0;

        changelog_offsets_key(sc.offsets_key, p->partition);
        if (!from[0] || !from[1])
                r = -ENOMEM;
        /* The restore commits as a batch does, which refuses a Redis
         * without its meta key: an emptied Redis found by its generations
         * (drop_fenced) has none yet. */
        if (r >= 0)
                r = mcd_store_init_meta(rs->env->store, NULL);
        clog_drop(rs->pub, p->partition, p->clog_hold);
        /* Our own changelog appends first: what is delivered releases its
         * batches' records, and they reach the topic before it is read. */
        if (r >= 0 && (publish_busy(rs->pub)))
                publish_drain(rs->pub, 30000);
        if (r >= 0)
                r = mcd_kafka_flush(rs->env->producer, 30000);
        if (r >= 0)
                r = scan_changelog(rs, &sc);
        if (r >= 0)
                r = restore_partition(rs, p, &sc, from);
        if (r >= 0 && (mcd_strmap_get(&sc.latest, sc.offsets_key) || p->origin_marks))
                r = looked_up(p, collect_published(rs->pub, from, p->partition, &p->redo_seen));
        scan_free(&sc);
        free(from[0]);
        free(from[1]);
        if (r < 0)
                log_error("partition %" PRId32 ": cannot rebuild from the changelog: %s", p->partition,
                          mcd_store_strerror(r));
        return r;
}
