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
 * be. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/apply.h"
#include "daemon/clog_owed.h"
#include "daemon/log.h"
#include "daemon/publish.h"
#include "daemon/state_codec.h"

int clog_keys_add(struct clog_keys *k, const char *key) {
        size_t n = strlen(key) + 1;

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
        memcpy(k->v + k->len, key, n);
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
                        r = clog_keys_add(&ck[i], changelog_offsets_key(key, p->partition));
        }
        for (size_t j = 0; r >= 0 && j < b->n_ids; j++)
                for (size_t i = 0; i < ps->n; i++)
                        if (ps->v[i]->partition == b->id_partition[j]) {
                                if (ck[i].v)
                                        r = clog_keys_add(&ck[i], b->ids[j]);
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
                if ((r = clog_push(pub, seq, b->id_partition[i], b->ids[i], val, len)) < 0)
                        free(val);
        }
        for (size_t i = 0; r >= 0 && i < ps->n; i++) {
                struct pair *p = ps->v[i];
                char key[CHANGELOG_OFFSETS_KEY_SIZE], *val = NULL;
                if (p->phase != PAIR_READY || !b->touched[i])
                        continue;
                if (!(val = offsets_record(&p->committed, pair_marks(p, marks))))
                        return -ENOMEM;
                if ((r = clog_push(pub, seq, p->partition, changelog_offsets_key(key, p->partition), val,
                                   strlen(val))) < 0)
                        free(val);
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
