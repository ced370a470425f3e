/* clog_owed.c -- a batch's changelog records: queued until its frames are
 * delivered, and owed, in Redis, until they are (clog_owed.h).
 *
 * DESIGN: a batch's changelog records wait in memory until its frames are
 * delivered (publish.c), so that the changelog never says more than the
 * output topics.  A crash meanwhile, or the partition taken away, would lose
 * them, and leave the changelog behind Redis for the batch's customers: a
 * later rebuild from it would restore them older than the offsets it
 * restores, their events lost.  So each commit pushes, in its transaction,
 * the keys of the partition's records to P clog_owed:<partition>; once
 * every record of that batch is reported on (its ack), the owner's next
 * commit trims the element.  The partition's next claim, by whichever
 * instance, appends each owed key again as Redis holds it then, and the
 * claim's first commit trims what it found (restore.c pair_clog_repair):
 * the trim is fenced with the commit, where a claim's own removal would not
 * be.
 *
 * The queue itself (clog_release) appends a batch's records once its
 * frames are delivered, a partition's offsets record last of all: only
 * once the partition's customer records of that batch and before are
 * reported on, so that the changelog's offsets are never past a customer
 * record still in flight (clog_waits). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/apply.h"
#include "daemon/clog_owed.h"
#include "daemon/kafka.h"
#include "daemon/log.h"
#include "daemon/publish.h"
#include "daemon/runtime.h"
#include "daemon/state_codec.h"

int clog_keys_add(struct clog_keys *k, const char *escape, const char *key) {
        size_t e = escape ? strlen(escape) : 0, n = e + strlen(key) + 1;

        if (k->len + n > k->cap) {
                size_t cap = k->cap ? k->cap * 2 : 256;
                char *v;
                while (cap < k->len + n)
                        cap *= 2;
                if (!(v = realloc(k->v, cap)))
                        return -ENOMEM;
                k->v = v;
                k->cap = cap;
        }
        if (e > 0)
                memcpy(k->v + k->len, escape, e);
        memcpy(k->v + k->len + e, key, n - e);
        k->len += n;
        return 0;
}

void clog_keys_free(struct clog_keys *k, size_t n) {
        if (!k)
                return;
        for (size_t i = 0; i < n; i++)
                free(k[i].v);
        free(k);
}

int clog_keys_each(const char *v, size_t len, int (*fn)(void *ctx, const char *key, size_t key_len), void *ctx) {
        size_t at = 0;

        while (at < len) {
                const char *end = memchr(v + at, '\0', len - at);
                size_t n = end ? (size_t)(end - (v + at)) : len - at;
                int r = n > 0 ? fn(ctx, v + at, n) : 0;
                if (r < 0)
                        return r;
                at += n + 1;
        }
        return 0;
}

int clog_owed_keys(const struct pairs *ps, const struct batch *b, struct clog_keys *ck) {
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ps->n; i++) {
                const struct pair *p = ps->v[i];
                char key[CHANGELOG_OFFSETS_KEY_SIZE];
                if (p->phase == PAIR_READY && b->touched[i])
                        r = clog_keys_add(&ck[i], NULL, changelog_offsets_key(key, p->partition));
        }
        for (size_t j = 0; r >= 0 && j < b->n_ids; j++)
                for (size_t i = 0; i < ps->n; i++)
                        if (ps->v[i]->partition == b->id_partition[j]) {
                                if (ck[i].v)
                                        r = clog_keys_add(&ck[i], changelog_escaped(b->ids[j]) ? CHANGELOG_ESCAPE : NULL,
                                                          b->ids[j]);
                                break;
                        }
        return r;
}

/* Queues the batch's changelog records: each customer's state (as written
 * to Redis, with its partition) and the offsets and marks of the pairs the
 * batch touched.  They go out once the batch's frames are delivered
 * (publish_pending).  0 or -ENOMEM. */
static int queue_batch(struct publisher *pub, struct pairs *ps, const struct batch *b, const char *marks,
                       uint64_t seq) {
        int r = 0;

        for (size_t i = 0; r >= 0 && i < b->n_ids; i++) {
                char *val = NULL;
                size_t len = 0;
                if (mcd_state_record(b->id_partition[i], b->state[i], b->state_len[i], &val, &len) < 0)
                        return -ENOMEM;
                r = clog_push(pub, seq, b->id_partition[i], changelog_customer_key(b->ids[i]), val, len);
        }
        for (size_t i = 0; r >= 0 && i < ps->n; i++) {
                struct pair *p = ps->v[i];
                char key[CHANGELOG_OFFSETS_KEY_SIZE], *val;
                if (p->phase != PAIR_READY || !b->touched[i])
                        continue;
                val = offsets_record(&p->committed, pair_marks(p, marks));
                r = clog_push(pub, seq, p->partition, strdup(changelog_offsets_key(key, p->partition)), val,
                              val ? strlen(val) : 0);
        }
        return r;
}

int clog_queue_batch(struct publisher *pub, struct pairs *ps, const struct batch *b, const char *marks,
                     uint64_t seq) {
        int r = queue_batch(pub, ps, b, marks, seq);

        if (r >= 0)
                return r;
        /* Their owed lists name them all: the claim appends them. */
        log_error("out of memory queueing a batch's changelog records; its partitions are claimed again, "
                  "which appends them");
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i]->phase == PAIR_READY)
                        pairs_restart(ps, ps->v[i]);
        return r;
}

static struct clog_ack *ack_new(struct clog_acks *l, uint64_t batch, size_t room) {
        struct clog_ack *a = calloc(1, sizeof(*a) + room * sizeof(a->part[0]));

        if (!a)
                return NULL;
        a->batch = batch;
        a->cap = room;
        if (l->tail)
                l->tail->next = a;
        else
                l->head = a;
        l->tail = a;
        return a;
}

struct clog_ack_part *clog_ack_part(struct clog_acks *l, uint64_t batch, int32_t partition, size_t room) {
        struct clog_ack *a = l->tail && l->tail->batch == batch ? l->tail : ack_new(l, batch, room);

        if (!a)
                return NULL;
        for (size_t i = 0; i < a->n; i++)
                if (a->part[i].partition == partition)
                        return &a->part[i];
        /* Full: only batch 0's can be (a repair's records under pairs
         * added since); a batch's own has room for every pair it had. */
        if (a->n == a->cap && !(a = ack_new(l, batch, room)))
                return NULL;
        a->part[a->n] = (struct clog_ack_part){.partition = partition};
        return &a->part[a->n++];
}

static bool ack_done(const struct clog_ack *a) {
        for (size_t i = 0; i < a->n; i++)
                if (a->part[i].outstanding > 0)
                        return false;
        return true;
}

void clog_acks_done(struct clog_acks *l, struct pairs *ps) {
        struct clog_ack *a;

        while ((a = l->head) && ack_done(a)) {
                for (size_t i = 0; i < a->n; i++) {
                        struct pair *p = a->batch > 0 ? pair_find(ps, a->part[i].partition) : NULL;
                        if (p && p->phase == PAIR_READY && !p->clog_failed && a->batch >= p->clog_from)
                                p->clog_untrimmed++;
                }
                if (!(l->head = a->next))
                        l->tail = NULL;
                free(a);
        }
}

bool clog_acks_any(const struct clog_acks *l) {
        return l->head != NULL;
}

void clog_acks_free(struct clog_acks *l) {
        while (l->head) {
                struct clog_ack *a = l->head;
                l->head = a->next;
                free(a);
        }
        l->tail = NULL;
}

/* ------------------------------------------------- the queue of records -- */

/* Room for one more record.  0 or -ENOMEM. */
static int clog_reserve(struct publisher *pub) {
        size_t cap = pub->cap_clog ? pub->cap_clog * 2 : 256;
        struct clog *v;

        if (pub->n_clog < pub->cap_clog)
                return 0;
        if (!(v = realloc(pub->clog, cap * sizeof(*v))))
                return -ENOMEM;
        pub->clog = v;
        pub->cap_clog = cap;
        return 0;
}

int clog_push(struct publisher *pub, uint64_t batch, int32_t partition, char *key, char *value, size_t len) {
        if (!key || !value || clog_reserve(pub) < 0) {
                free(key);
                free(value);
                return -ENOMEM;
        }
        pub->clog[pub->n_clog++] = (struct clog){
                .key = key, .batch = batch, .partition = partition, .value = value, .value_len = len};
        return 0;
}

static bool clog_held(struct publisher *pub, const struct clog *c) {
        const struct pair *p = pair_find(pub->pairs, c->partition);
        return p && c->batch >= p->clog_hold;
}

/* Whether record c is to be appended now: its batch older than `upto`, and
 * not held (`holds`: some pair holds records). */
static bool clog_due(struct publisher *pub, const struct clog *c, uint64_t upto, bool holds) {
        return c->batch < upto && !(holds && clog_held(pub, c));
}

/* After a stall past the session timeout since our last commit was sent
 * (SIGSTOP, a swapped-out process, a Kafka outage holding the outputs
 * back), another instance may own a partition by now and have appended
 * newer records of the same customers: ours, appended after theirs, would
 * be the changelog's last word, and a rebuild would restore them stale.  As
 * drop_fenced does for frames, such a pair's records are dropped and the
 * pair starts again: its claim is fenced if another instance took it, and
 * otherwise appends its owed customers from Redis (clog_owed.h), which
 * holds them (tests/daemon_zombie.sh, case changelog).  A stall is told
 * by the time alone, wherever it fell (in publish_pending's own wait too,
 * or a Redis outage): a pair restarted without need costs a claim, not
 * an outcome.  This function can't fail. */
static void clog_drop_stalled(struct publisher *pub, uint64_t upto, bool holds) {
        int64_t since;

        if (!publish_stalled(pub, &since))
                return;
        for (size_t k = 0; k < pub->pairs->n; k++) {
                struct pair *p = pub->pairs->v[k];
                bool due = false;
                for (size_t i = 0; i < pub->n_clog && !due; i++)
                        due = pub->clog[i].partition == p->partition && clog_due(pub, &pub->clog[i], upto, holds);
                if (!due || p->phase == PAIR_FENCED)
                        continue;
                log_warning("partition %" PRId32 ": %" PRId64 " ms since its last commit, past the session timeout; "
                            "claimed again before its changelog records are appended (its owed customers are "
                            "appended from Redis)", p->partition, since);
                clog_drop(pub, p->partition, 0);
                if (p->phase == PAIR_READY)
                        pairs_restart(pub->pairs, p);
        }
}

/* Whether record c's partition has had an append fail: its later records
 * are not appended, and its claim appends every key its owed list names,
 * theirs too, as Redis holds them then.  Appended, a later batch's offsets
 * record would put the changelog past the failed customer's record, and a
 * rebuild from it (Redis lost before the claim) would restore offsets
 * past that customer's events.  This function can't fail. */
static bool clog_stopped(struct publisher *pub, const struct clog *c) {
        const struct pair *p = pair_find(pub->pairs, c->partition);
        return p && p->clog_failed;
}

/* Frees a record not appended, its place in its batch's ack (clog_waits)
 * given back.  This function can't fail. */
static void clog_forget(struct clog *c) {
        if (c->held)
                c->held->outstanding--;
        free(c->key);
        free(c->value);
}

/* True when customer records of `partition`, of `batch` or before, are
 * appended and not yet reported on. */
static bool customers_in_flight(const struct clog_acks *l, int32_t partition, uint64_t batch) {
        for (const struct clog_ack *a = l->head; a; a = a->next)
                for (size_t i = 0; a->batch <= batch && i < a->n; i++)
                        if (a->part[i].partition == partition && a->part[i].customers > 0)
                                return true;
        return false;
}

/* Whether record c, a partition's offsets record, waits for that
 * partition's customer records of its batch and before, still in flight.
 * Appended with them, it could reach the changelog first, and a process
 * lost with its Redis (a host's power) would leave a changelog whose
 * offsets are past those customers' last records: a rebuild from it would
 * never apply their events again.  Waiting, it is counted in its batch's
 * ack already (c->held), so that the owed list is not trimmed before it is
 * appended.  With no memory to count it, it goes at once.  This function
 * can't fail. */
static bool clog_waits(struct publisher *pub, struct clog *c) {
        if (!changelog_is_offsets_key(c->key, strlen(c->key), c->partition) ||
            !customers_in_flight(&pub->acks, c->partition, c->batch))
                return false;
        if (!c->held && (c->held = clog_ack_part(&pub->acks, c->batch, c->partition, pub->pairs->n + 1)))
                c->held->outstanding++;
        return c->held != NULL;
}

/* Appends the changelog records of every batch older than `upto`, but
 * those held (a partition's records are independent of the others'), and
 * those a stall made doubtful (clog_drop_stalled), and the offsets records
 * that wait for their customers' (clog_waits); drops those of a partition
 * whose append failed (clog_stopped).  The fault point stops before batch
 * fault_stop_before_changelog's records, the earlier ones delivered, and
 * before the stall is looked for. */
void clog_release(struct publisher *pub, uint64_t upto) {
        size_t kept = 0;
        bool holds = false;

        for (size_t i = 0; i < pub->pairs->n && !holds; i++)
                holds = pub->pairs->v[i]->clog_hold != UINT64_MAX;
        for (size_t i = 0; i < pub->n_clog && pub->fault_stop_before_changelog; i++) {
                uint64_t at = pub->fault_stop_before_changelog;
                if (pub->clog[i].batch != at || !clog_due(pub, &pub->clog[i], upto, holds))
                        continue;
                for (int round = 0; round < 2; round++) {        /* the offsets records after the others */
                        clog_release(pub, at);
                        mcd_kafka_flush(pub->env->producer, 5000);     /* the earlier batches' records are in */
                }
                fault_point(&pub->fault_stop_before_changelog, at, "changelog append");      /* once */
                break;
        }
        clog_drop_stalled(pub, upto, holds);
        for (size_t i = 0; i < pub->n_clog; i++) {
                struct clog *c = &pub->clog[i];
                bool due = clog_due(pub, c, upto, holds), stopped = due && clog_stopped(pub, c);
                if (!due || (!stopped && clog_waits(pub, c))) {
                        pub->clog[kept++] = *c;
                        continue;
                }
                if (stopped) {
                        clog_forget(c);
                        continue;
                }
                if (c->held)
                        changelog_produce(pub, c->held, true, c->key, c->value, c->value_len);
                else
                        changelog_append(pub, c->partition, c->batch, c->key, c->value, c->value_len);
                free(c->key);
                free(c->value);
        }
        pub->n_clog = kept;
}

/* Forgets a partition's records of batch `from` on: frames of that batch
 * were dropped unpublished and Redis lost them, and the changelog must not
 * say more than the output topics do (what they recorded is derived again);
 * or the partition is no longer ours (from 0), and its next owner appends
 * them from the owed list once the outbox is reconciled (clog_owed.h). */
void clog_drop(struct publisher *pub, int32_t partition, uint64_t from) {
        size_t kept = 0;

        for (size_t i = 0; i < pub->n_clog; i++) {
                if (pub->clog[i].partition == partition && pub->clog[i].batch >= from) {
                        clog_forget(&pub->clog[i]);
                        continue;
                }
                pub->clog[kept++] = pub->clog[i];
        }
        pub->n_clog = kept;
}

void clog_queue_clear(struct publisher *pub) {
        for (size_t i = 0; i < pub->n_clog; i++)
                clog_forget(&pub->clog[i]);
        free(pub->clog);
        pub->clog = NULL;
        pub->n_clog = pub->cap_clog = 0;
}
