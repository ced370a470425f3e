/* batch.c -- collect, load, apply, commit, undo: one batch through its life
 * (batch.h).
 *
 * DESIGN: Redis is the commit point (README "Exactly once").  A batch takes
 * up to batch.max_events messages round robin over the ready pairs, each
 * pair's in merge order (intake.h), and the customers due by the wall clock
 * in idle pairs; its customers are loaded in one round trip, or in front
 * of the last batch's commit when the backlog lets the next batch be
 * collected ahead, and then applied while Redis runs that commit (struct
 * overlap).  The commit writes states, due times, offsets and frames in one
 * transaction fenced by every pair's generation, after the last batch's frames
 * were delivered.  A commit refused or lost undoes the batch: its pairs go
 * back to INIT (or are fenced), and what it counted is taken back. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/batch.h"
#include "daemon/clog_owed.h"
#include "daemon/log.h"
#include "daemon/macro.h"
#include "daemon/metrics.h"
#include "daemon/registry_gate.h"
#include "daemon/state_cache.h"
#include "daemon/state_codec.h"
#include "daemon/store.h"

/* Customers a batch may hold: batch.max_bytes of state, estimated from the
 * last batches' mean state per customer, within batch.max_events and never
 * below 16. */
size_t batch_customers(const struct batcher *bt) {
        size_t n = (size_t)bt->env->cfg->batch_max, least = n < 16 ? n : 16;

        if (bt->state_per_customer > 0 && (double)bt->env->cfg->batch_max_bytes / bt->state_per_customer < (double)n)
                n = (size_t)((double)bt->env->cfg->batch_max_bytes / bt->state_per_customer);
        return n > least ? n : least;
}

/* Does m bring one customer too many into the batch (batch_customers)?
 * Its key is added to the batch's set otherwise.  Keyless messages (dead
 * letters) load no state and are not counted. */
static bool customer_limit(struct mcd_seen *keys, const struct inmsg *m, size_t max_customers) {
        uint64_t h;

        if (!m->key)
                return false;
        h = mcd_id_hash_n(m->key, m->key_len);
        if (mcd_seen_has(keys, h))
                return false;
        if (mcd_seen_count(keys) >= max_customers)
                return true;
        return mcd_seen_add(keys, h, 0) < 0;    /* out of memory: this batch ends here */
}

/* A zeroed array of room for n items or more, *cap its room: a spare one
 * when one is that large, else a new one.  NULL when out of memory. */
static struct item *items_new(struct batcher *bt, size_t n, size_t *cap) {
        struct item *items;

        for (size_t k = 0; k < ELEMENTSOF(bt->spare); k++)
                if (bt->spare[k].items && bt->spare[k].cap >= n) {
                        items = bt->spare[k].items;
                        *cap = bt->spare[k].cap;
                        bt->spare[k].items = NULL;
                        return items;
                }
        *cap = n ? n : 1;
        return zalloc_array(*cap, sizeof(*items));
}

/* Destroys b (NULL is fine), its items array kept as a spare if there is
 * room for one. */
static void batch_recycle(struct batcher *bt, struct batch *b) {
        for (size_t k = 0; b && b->items && k < ELEMENTSOF(bt->spare); k++)
                if (!bt->spare[k].items)
                        bt->spare[k].items = batch_take_items(b, &bt->spare[k].cap);
        batch_destroy(b);
}

/* Takes up to max events, of at most batch_customers() customers: a
 * customer's events share its one load and write, however many. */
static int batch_collect(struct batcher *bt, struct batch *b, size_t max) {
        struct mcd_seen keys = {0};
        size_t max_customers = batch_customers(bt);
        int64_t mono_now = mono_ms();
        bool full = false;

        b->epoch = bt->pairs->epoch;
        b->n_pairs = bt->pairs->n;
        b->items = items_new(bt, max, &b->cap_items);
        b->next = calloc(bt->pairs->n + 1, sizeof(*b->next));
        b->clock = calloc(bt->pairs->n + 1, sizeof(*b->clock));
        if (!b->items || !b->next || !b->clock)
                return -ENOMEM;
        /* Round robin over the pairs, so that no partition starves. */
        bt->next_pair = bt->pairs->n ? (bt->next_pair + 1) % bt->pairs->n : 0;
        for (size_t k = 0; k < bt->pairs->n && b->n_items < max && !full; k++) {
                struct pair *p = bt->pairs->v[(bt->next_pair + k) % bt->pairs->n];
                struct inmsg *m;
                int t;
                if (p->phase != PAIR_READY || p->clog_failed)
                        continue;
                while (b->n_items < max && (m = merge_next(bt->in, p, &t, mono_now))) {
                        struct item *it;
                        if ((full = customer_limit(&keys, m, max_customers))) {
                                p->q[t].head--;         /* left for the next batch */
                                break;
                        }
                        it = &b->items[b->n_items++];
                        it->m = m;
                        it->pair = p;
                        it->incarnation = p->incarnation;
                        it->topic = t;
                        if (t == REL)
                                p->next.rel = m->offset + 1;
                        else
                                p->next.sub = m->offset + 1;
                }
        }
        mcd_seen_clear(&keys);
        for (size_t i = 0; i < bt->pairs->n; i++)
                b->next[i] = bt->pairs->v[i]->next;
        return 0;
}

/* Gives a batch's messages back to their pairs, as if never collected (the
 * batch was collected ahead and cannot be used).  The messages of pairs no
 * longer ready are dropped: those pairs read again from Redis's offsets. */
static void batch_rewind(struct batcher *bt, struct batch *b);

/* Undoes an applied batch that cannot be committed: the pairs' stream time
 * goes back, the messages back to their queues (the customers, loaded
 * copies, are dropped with the batch). */
static void batch_unapply(struct batcher *bt, struct batch *b) {
        /* A batch applied ahead may be undone after a rebalance: a pair's
         * clock goes back only in the incarnation that moved it. */
        for (size_t i = 0; i < b->n_pairs; i++) {
                struct pair *p = pair_find(bt->pairs, b->clock[i].partition);
                if (p && p->incarnation == b->clock[i].incarnation)
                        p->stream_time = b->clock[i].stream_time;
        }
        batch_rewind(bt, b);
}

static void batch_rewind(struct batcher *bt, struct batch *b) {
        for (size_t i = b->n_items; i-- > 0;) {
                struct item *it = &b->items[i];
                struct pair *p = pair_find(bt->pairs, it->m->partition);

                if (!p || p->phase != PAIR_READY || p->incarnation != it->incarnation)
                        continue;       /* re-read from the stored offsets */
                if (q_unshift(&p->q[it->topic], it->m) < 0) {
                        log_error("out of memory; partition %" PRId32 " restarts", p->partition);
                        pair_restart(bt->tm, p);
                        continue;
                }
                if (it->topic == REL)
                        p->next.rel = it->m->offset;
                else
                        p->next.sub = it->m->offset;
                it->m = NULL;
        }
}

/* The partitions a due scan asks, and the clock of each: the idle pairs'
 * (pair_idle) by the wall clock, first, then the busy pairs' by their
 * stream time, which their events' firing uses too.  On a partition never
 * idle (events less than merge_wait apart), a customer without events of
 * its own would otherwise never see its timer, which replay fires once any
 * event passes it.  Returns the count of idle ones.  This function can't
 * fail. */
static size_t due_partitions(struct batcher *bt, int64_t now, int32_t *parts, mcd_time_t *until, size_t *n) {
        size_t n_idle = 0, n_busy = 0, m = bt->pairs->n;

        bt->due_rotate = m ? (bt->due_rotate + 1) % m : 0;   /* each scan starts elsewhere */
        for (size_t i = 0; i < m; i++) {
                const struct pair *p = bt->pairs->v[(bt->due_rotate + i) % m];
                if (pair_idle(bt->in, p)) {
                        parts[n_idle] = p->partition;
                        until[n_idle++] = now;
                } else if (p->phase == PAIR_READY && !p->clog_failed && p->stream_time != INT64_MIN) {
                        n_busy++;       /* from the end, moved behind the idle ones below */
                        parts[m - n_busy] = p->partition;
                        until[m - n_busy] = p->stream_time;
                }
        }
        memmove(parts + n_idle, parts + m - n_busy, n_busy * sizeof(*parts));
        memmove(until + n_idle, until + m - n_busy, n_busy * sizeof(*until));
        *n = n_idle + n_busy;
        return n_idle;
}

/* When the due scan after this one runs: in a second, or at the next batch
 * while more are due than this one took, as long as the last such scan's
 * customers were committed (each commit moves or takes out their entries;
 * an entry left in place must not make every batch scan).  This function
 * can't fail. */
static void due_next_scan(struct batcher *bt, int64_t now, bool more) {
        bool progressed = !bt->due_rescan || bt->due_committed != bt->due_seen;

        bt->due_seen = bt->due_committed;
        bt->due_rescan = more && progressed;
        bt->next_due_scan = bt->due_rescan ? now : now + 1000;
        if (bt->due_rescan)
                log_debug("due scan: more customers due than a batch takes; the next batch looks again");
}

/* The customers due in the owned pairs (due_partitions), asked for in one
 * round trip (due_next_scan says when): as many as a batch takes
 * (batch_customers), shared out among the pairs.  Each due customer's
 * commit moves or takes out its due entry, so a batch collected while one
 * holding due customers commits (!may_scan) does not look: it would find
 * them again.  The idle pairs' come first, b->n_due_wall of them
 * (batch_apply). */
static int batch_due(struct batcher *bt, struct batch *b, int64_t now, bool may_scan) {
        int32_t *parts, *id_parts = NULL;
        mcd_time_t *until;
        char **ids = NULL;
        size_t n_parts = 0, n_idle, n = 0;
        bool more = false;
        int r;

        b->n_due_wall = b->n_ids;
        if (!may_scan || now < bt->next_due_scan)
                return 0;
        parts = calloc(bt->pairs->n + 1, sizeof(*parts));
        if (!parts || !(until = calloc(bt->pairs->n + 1, sizeof(*until)))) {
                free(parts);
                return -ENOMEM;
        }
        n_idle = due_partitions(bt, now, parts, until, &n_parts);
        r = mcd_store_due(bt->env->store, parts, until, n_parts, batch_customers(bt), &ids, &id_parts, &n, &more);
        due_next_scan(bt, now, more);
        /* Idle, nothing due: is the state still there?  A Redis restarted
         * empty has no due index either, and would otherwise be found only
         * by the next commit, whenever input comes. */
        if (r >= 0 && n == 0 && n_idle > 0) {
                bool exists = true;
                r = mcd_store_meta_exists(bt->env->store, &exists);
                if (r >= 0 && !exists)
                        r = -ENODATA;
        }
        for (size_t j = 0, idle = 0; r >= 0 && j < n; j++) {
                while (idle < n_idle && parts[idle] != id_parts[j])
                        idle++;         /* ids come in parts' order: the idle pairs' first */
                r = batch_add_id(b, ids[j], id_parts[j], NULL);
                if (idle < n_idle)
                        b->n_due_wall = b->n_ids;
        }
        mcd_store_ids_free(ids, n);
        free(id_parts);
        free(parts);
        free(until);
        return r;
}

/* Frees the last batch: nothing refers to it once committed (its frames
 * went to the pending list, its changelog records were copied). */
static void free_spent(struct batcher *bt) {
        batch_recycle(bt, bt->spent);
        bt->spent = NULL;
}

/* After a batch: the mean size of its customers' state joins the average. */
static void note_state_size(struct batcher *bt, const struct batch *b) {
        size_t bytes = 0;
        double v;

        if (b->n_ids == 0)
                return;
        for (size_t i = 0; i < b->n_ids; i++)
                bytes += b->state_len[i];
        v = (double)bytes / (double)b->n_ids;
        bt->state_per_customer = bt->state_per_customer > 0 ? 0.7 * bt->state_per_customer + 0.3 * v : v;
}

/* Applies a loaded batch: the rules, then its customers' new state. */
static int apply_loaded(struct batcher *bt, struct batch *b, int64_t now) {
        int r;

        batch_loaded(b);
        r = batch_apply(bt->ap, b, now, b->n_due);
        if (r >= 0)
                r = batch_write_states(bt->ap, b);
        if (r >= 0)
                note_state_size(bt, b);
        return r;
}

/* The batch collected ahead, loaded and applied while the batch before it
 * is committed (mcd_store_load_and_commit's while_running); with no batch
 * being committed, the load of a batch alone (batch_load).
 *
 * DESIGN: Redis runs the commit for most of a batch's round trip.
 * The next batch's customers are loaded in front of the commit, in the
 * same round trip (mcd_store_load_and_commit): their reply comes back
 * first, and the rules run on them while Redis runs the commit.  A customer
 * both batches hold is not loaded: it is decoded from the state the commit
 * writes, which is what Redis would answer after it; nor is one the state
 * cache holds (state_cache.h), decoded from its last committed state.
 * Nothing the next batch makes leaves the process before its own commit; if
 * this commit fails, the next batch is undone first (batch_give_back), then
 * this one. */
struct overlap {
        struct batcher *bt;
        const struct batch *b;       /* being committed, or NULL */
        struct batch *ahead;         /* collected ahead: the batch to load */
        const char **ids;            /* ahead's customers neither b nor the cache holds: loaded */
        size_t *at;                  /* where each goes in ahead->customers */
        struct mcd_customer *loaded; /* as loaded, until moved to ahead */
        size_t n;
        const char **from;           /* per ahead customer: the stored state it is decoded from, NULL if loaded */
        size_t *from_len;
        int *decoded;                /* per ahead customer: its decoding's result */
        int load_r;                  /* the load's result */
        int apply_r;                 /* ahead's: 0 when applied; -ECANCELED when not tried */
        int64_t span[2];             /* while_committing's start and end (mono_us); 0 when not called */
};

/* The stored state a customer of ahead is decoded from: the one b's
 * commit writes, else the state cache's (counted as a hit); NULL when it
 * is to be loaded (counted as a miss when there is a cache). */
static const char *held(struct overlap *o, const char *id, size_t *len) {
        uintptr_t v = o->b ? (uintptr_t)mcd_strmap_get(&o->b->index, id) : 0;
        const char *state;

        if (v) {
                *len = o->b->state_len[v - 1];
                return o->b->state[v - 1];
        }
        if (!o->bt->pairs->cache)
                return NULL;
        state = mcd_state_cache_get(o->bt->pairs->cache, id, len);
        if (state)
                o->bt->env->st.state_cache_hits++;
        else
                o->bt->env->st.state_cache_misses++;
        return state;
}

/* Sorts ahead's customers into those to load and those held. */
static int overlap_init(struct overlap *o) {
        const struct batch *ahead = o->ahead;
        size_t n = ahead->n_ids + 1;

        /* ids, at and loaded are filled up to o->n before they are read
         * (loaded by the load, whole or not at all): not zeroed */
        o->ids = alloc_array(n, sizeof(*o->ids));
        o->at = alloc_array(n, sizeof(*o->at));
        o->loaded = alloc_array(n, sizeof(*o->loaded));
        o->from = zalloc_array(n, sizeof(*o->from));
        o->from_len = zalloc_array(n, sizeof(*o->from_len));
        o->decoded = zalloc_array(n, sizeof(*o->decoded));
        if (!o->ids || !o->at || !o->loaded || !o->from || !o->from_len || !o->decoded)
                return -ENOMEM;
        for (size_t j = 0; j < ahead->n_ids; j++)
                if (!(o->from[j] = held(o, ahead->ids[j], &o->from_len[j]))) {
                        o->ids[o->n] = ahead->ids[j];
                        o->at[o->n++] = j;
                }
        return 0;
}

/* Frees what overlap_init made; the customers loaded and not moved (the
 * store clears them when the load fails, so these are moved or none). */
static void overlap_free(struct overlap *o) {
        free(o->ids);
        free(o->at);
        free(o->loaded);
        free(o->from);
        free(o->from_len);
        free(o->decoded);
}

static void decode_held(void *ctx, size_t j, unsigned thread) {
        struct overlap *o = ctx;

        (void)thread;
        if (o->from[j])
                o->decoded[j] = mcd_state_decode(o->from[j], o->from_len[j], &o->ahead->customers[j], NULL, 0);
}

/* Fills ahead->customers: the loaded ones moved, the held ones decoded on
 * the batch threads.  On failure the customers not filled stay zeroed,
 * which batch_destroy clears as empty. */
static int overlap_fill(struct overlap *o) {
        struct batch *ahead = o->ahead;

        for (size_t i = 0; i < o->n; i++)
                ahead->customers[o->at[i]] = o->loaded[i];
        if (o->n < ahead->n_ids)        /* some held: decoded */
                mcd_par_for(o->bt->ap->par, ahead->n_ids, decode_held, o);
        for (size_t j = 0; j < ahead->n_ids; j++)
                if (o->decoded[j] < 0)
                        return o->decoded[j];
        return 0;
}

/* Loads a batch's customers when no commit is under way: those the state
 * cache holds decoded from it, the others read from Redis in one round
 * trip (none when the cache holds them all). */
static int batch_load(struct batcher *bt, struct batch *b) {
        struct overlap o = {.bt = bt, .ahead = b};
        int r = overlap_init(&o);

        if (r == 0 && o.n > 0)
                r = mcd_store_load(bt->env->store, o.ids, o.n, o.loaded);
        if (r == 0)
                r = overlap_fill(&o);
        overlap_free(&o);
        return r;
}

/* After a commit: its customers' states, now Redis's, kept in the state
 * cache; but not those the batch met first (they had no state): in a
 * stream of customers that each come once, they would only push out the
 * ones that come back. */
static void cache_committed(struct batcher *bt, struct batch *b) {
        for (size_t i = 0; bt->pairs->cache && i < b->n_ids; i++)
                if (!b->blank[i])
                        mcd_state_cache_put(bt->pairs->cache, b->ids[i], b->id_partition[i], b->state[i],
                                            b->state_len[i]);
        bt->env->st.state_cache_bytes = (int64_t)mcd_state_cache_bytes(bt->pairs->cache);
}

/* While Redis runs the commit: the last batch freed, the next applied. */
static void while_committing(void *ctx, int load_r) {
        struct overlap *o = ctx;

        o->span[0] = mono_us();
        free_spent(o->bt);
        o->load_r = load_r;
        if (o->ahead && load_r >= 0) {
                o->bt->ahead_before = o->bt->env->st;
                o->apply_r = overlap_fill(o);
                if (o->apply_r == 0)
                        o->apply_r = apply_loaded(o->bt, o->ahead, now_ms());
        }
        o->span[1] = mono_us();
}

/* The store's view of a batch's customers and ready pairs, in sc and sp
 * (room for every customer and pair).  The due entry of a customer the due
 * scan found is written whatever its state: a stray one (a state deleted by
 * hand) would be loaded at every scan, and keep re-processing (restore.c). */
static void store_batch(struct batcher *bt, const struct batch *b, const char *marks, const struct clog_keys *ck,
                        struct mcd_store_batch *sb, struct mcd_store_customer *sc, struct mcd_store_partition *sp) {
        for (size_t i = 0; i < b->n_ids; i++) {
                sc[i].customer = &b->customers[i];
                sc[i].partition = b->id_partition[i];
                sc[i].state = b->state[i];
                sc[i].state_len = b->state_len[i];
                sc[i].due_known = i >= b->n_due;
                sc[i].had_due = b->had_due[i];
                sc[i].due_before = b->due_before[i];
        }
        sb->customers = sc;
        sb->n_customers = b->n_ids;
        sb->partitions = sp;
        for (size_t i = 0; i < bt->pairs->n; i++) {
                struct pair *p = bt->pairs->v[i];
                if (p->phase != PAIR_READY)
                        continue;
                sp[sb->n_partitions++] = (struct mcd_store_partition){
                        .partition = p->partition,
                        .generation = p->generation,
                        .seq = p->seq,
                        .set_offsets = b->next[i].rel != p->committed.rel || b->next[i].sub != p->committed.sub,
                        .offsets = b->next[i],
                        .frames = (const void *const *)b->frames[i],
                        .frame_lens = b->frame_lens[i],
                        .n_frames = b->n_frames[i],
                        .trim = p->untrimmed,
                        .marks = pair_marks(p, marks),
                        .clog_keys = ck[i].v,
                        .clog_keys_len = ck[i].len,
                        .clog_trim = p->clog_untrimmed,
                        .clog_forget = p->clog_forget,
                        .n_clog_forget = p->n_clog_forget,
                };
                p->clog_trimming = p->clog_untrimmed;
        }
}

/* Commits a batch; with `ahead`, loads that batch's customers in the same
 * round trip and applies it while Redis runs the commit (struct overlap),
 * freeing the last batch meanwhile.  *load_r and *apply_r are ahead's
 * (-ECANCELED when not tried); span[] is while_committing's start and end
 * (mono_us; 0 when it was not called), for the batch log. */
static int batch_commit(struct batcher *bt, struct batch *b, char *marks, struct batch *ahead, int *load_r,
                        int *apply_r, int64_t span[2]) {
        struct mcd_store_customer *sc = zalloc_array(b->n_ids + 1, sizeof(*sc));
        struct mcd_store_partition *sp = calloc(bt->pairs->n + 1, sizeof(*sp));
        struct clog_keys *ck = calloc(bt->pairs->n + 1, sizeof(*ck));
        struct overlap o = {.bt = bt, .b = b, .ahead = ahead, .load_r = -ECANCELED, .apply_r = -ECANCELED};
        struct mcd_store_batch sb = {.while_running = while_committing, .while_running_ctx = &o};
        int r = sc && sp && ck ? clog_owed_keys(bt->pairs, b, ck) : -ENOMEM;

        if (r == 0 && ahead && overlap_init(&o) < 0) {
                overlap_free(&o);       /* out of memory: committed alone, ahead collected again */
                o = (struct overlap){.bt = bt, .b = b, .load_r = -ECANCELED, .apply_r = -ECANCELED};
        }
        if (r == 0) {
                store_batch(bt, b, marks, ck, &sb, sc, sp);
                fault_point(&bt->fault_stop_before_commit, bt->env->st.batches + 1, "commit");
                r = mcd_store_load_and_commit(bt->env->store, &sb, o.ids, o.n, o.loaded, &o.load_r);
        }
        *load_r = o.load_r;
        *apply_r = o.apply_r;
        span[0] = o.span[0];
        span[1] = o.span[1];
        overlap_free(&o);
        free(sc);
        free(sp);
        clog_keys_free(ck, bt->pairs->n);
        return r;
}

/* Pair i's committed frames handed to the publisher.  0 or -ENOMEM (those
 * not taken stay in b; the fault injected by MCD_FAULT_PUSH_ENOMEM fails
 * the second). */
static int frames_push(struct batcher *bt, struct batch *b, size_t i, uint64_t seq) {
        for (size_t j = 0; j < b->n_frames[i]; j++) {
                int r = bt->fault_push_enomem == seq && j == 1 ? -ENOMEM :
                        pending_push(bt->pub, b->frames[i][j], b->frame_lens[i][j], bt->pairs->v[i]->partition, seq);
                if (r < 0)
                        return r;
                b->frames[i][j] = NULL;
        }
        return 0;
}

/* After a commit: the frames become pending, trims are done, offsets are
 * the committed ones, the customers go to the changelog once delivered.
 * A pair whose frames could not all be handed over (out of memory) starts
 * again: its outbox in Redis holds them, and the reconciliation publishes
 * those the topics lack; its changelog records, from this batch on, wait
 * for that (clog_hold).  This function can't fail. */
static void batch_committed(struct batcher *bt, struct batch *b) {
        uint64_t seq = bt->env->st.batches + 1;

        bt->due_committed += b->n_due;
        for (size_t i = 0; i < bt->pairs->n; i++) {
                struct pair *p = bt->pairs->v[i];
                if (p->phase != PAIR_READY)
                        continue;
                bool moved = b->next[i].rel != p->committed.rel || b->next[i].sub != p->committed.sub;
                p->committed = b->next[i];
                p->seq++;
                if (moved || (i < b->n_pairs && b->touched[i]))        /* timers only: its counter counts too */
                        group_note(bt->tm, p);
                p->untrimmed = 0;
                p->clog_untrimmed -= p->clog_trimming;
                pair_forget_lost(p, NULL, 0);
                if (frames_push(bt, b, i, seq) < 0) {
                        log_error("partition %" PRId32 ": out of memory queueing the outcomes of batch %" PRIu64
                                  "; the partition starts again and publishes them from its outbox",
                                  p->partition, seq);
                        pairs_restart(bt->pairs, p);
                        if (seq < p->clog_hold)
                                p->clog_hold = seq;
                }
        }
}

/* A failed commit: nothing of the batch was written.  Every ready pair goes
 * back to INIT and re-reads from Redis's offsets. */
static void batch_abort(struct batcher *bt, int r) {
        if (r == -ESTALE)
                log_warning("a partition was taken over by another instance; dropping the batch");
        else if (r == MCD_STORE_ROLLBACK)
                log_error("Redis came back older than this instance's last commits (a rollback): the batch is "
                          "dropped and the partitions re-processed from Redis's offsets, what was already "
                          "published looked up");
        else if (r == -ENODATA)
                log_error("Redis lost the daemon's state (its data was emptied); rebuilding from the changelog");
        else if (r == MCD_STORE_WRONG_TYPE)
                log_error("batch not committed: a key it writes is of another type in Redis; retrying from the "
                          "stored offsets once it is deleted");
        else
                log_error("batch not committed: %s; retrying from the stored offsets", strerror(-r));
        if (redis_failed(bt->env, r))
                bt->env->st.redis_errors++;
        if (r == -ENODATA) {
                bool created;
                if (mcd_store_init_meta(bt->env->store, &created) < 0)
                        bt->env->redis_ok = false;
        }
        for (size_t i = 0; i < bt->pairs->n; i++) {
                struct pair *p = bt->pairs->v[i];
                if (p->phase != PAIR_READY)
                        continue;
                if (r == -ESTALE && fence_if_taken(bt->tm, p))
                        continue;
                p->rolled_back = p->rolled_back || r == MCD_STORE_ROLLBACK;
                pair_restart(bt->tm, p);
        }
}

/* -EAGAIN when an item could not be decoded because the schema registry
 * could not be asked (the batch is to be given back, consumption paused:
 * registry_gate.h); else 0. */
static int registry_unavailable(struct batcher *bt, struct batch *b) {
        for (size_t i = 0; i < b->n_items; i++)
                if (!b->items[i].good && b->items[i].err.code &&
                    strcmp(b->items[i].err.code, MCD_DLQ_REGISTRY_UNAVAILABLE) == 0) {
                        mcd_registry_gate_failed(bt->ap->registry, &bt->env->st, mono_ms(), b->items[i].err.message);
                        return -EAGAIN;
                }
        mcd_registry_gate_ok(bt->ap->registry, &bt->env->st);
        return 0;
}

/* Collects a batch from the customers due and what is buffered, decodes
 * it and lists its customers; they are not loaded.  The due scan comes
 * first: the wall clock is asked only of pairs idle then, none of whose
 * events is in the batch.  After the collect, a pair whose last events it
 * took would look idle too, and its timers, fired by the wall clock, would
 * go before those events (earlier in stream time), unlike replay. */
static int batch_prepare(struct batcher *bt, struct batch *b, int64_t now, bool may_scan) {
        int r;

        mcd_outcomes_init(&b->out);
        r = batch_due(bt, b, now, may_scan);
        if (r >= 0)
                r = batch_collect(bt, b, (size_t)bt->env->cfg->batch_max);
        b->n_due = b->n_ids;
        if (r >= 0)
                batch_decode(bt->ap, b);
        if (r >= 0)
                r = registry_unavailable(bt, b);
        for (size_t i = 0; r >= 0 && i < b->n_items; i++)
                if (b->items[i].good)
                        r = batch_add_id(b, b->items[i].ev.customer_id, b->items[i].pair->partition,
                                         &b->items[i].customer);
        if (r < 0)
                return r;
        b->frames = zalloc_array(b->n_pairs + 1, sizeof(*b->frames));
        b->frame_lens = zalloc_array(b->n_pairs + 1, sizeof(*b->frame_lens));
        b->n_frames = zalloc_array(b->n_pairs + 1, sizeof(*b->n_frames));
        b->touched = zalloc_array(b->n_pairs + 1, sizeof(*b->touched));
        b->customers = zalloc_array(b->n_ids + 1, sizeof(*b->customers));
        b->had_due = zalloc_array(b->n_ids + 1, sizeof(*b->had_due));
        b->blank = zalloc_array(b->n_ids + 1, sizeof(*b->blank));
        b->due_before = zalloc_array(b->n_ids + 1, sizeof(*b->due_before));
        b->state = zalloc_array(b->n_ids + 1, sizeof(*b->state));
        b->state_len = zalloc_array(b->n_ids + 1, sizeof(*b->state_len));
        if (!b->frames || !b->frame_lens || !b->n_frames || !b->touched || !b->customers || !b->had_due ||
            !b->blank || !b->due_before || !b->state || !b->state_len)
                return -ENOMEM;
        return 0;
}

/* Drops a batch that was collected but will not be committed, its messages
 * back in their queues (see batch_rewind); one applied ahead is undone
 * (batch_unapply) and what it counted taken back.  NULL is nothing to drop. */
static void batch_give_back(struct batcher *bt, struct batch *b) {
        if (!b)
                return;
        if (b->n_due > 0) {             /* its due customers: looked for again at the next batch */
                bt->next_due_scan = 0;
                bt->due_rescan = false;
        }
        if (b->applied) {
                batch_unapply(bt, b);
                mcd_stats_take_back(&bt->env->st, &bt->ahead_before);
        } else {
                batch_rewind(bt, b);
        }
        batch_recycle(bt, b);
}

/* The batch collected ahead (and applied), if it can still be used: a pair added,
 * removed or restarted since makes it refer to what is gone, so its
 * messages go back to their queues. */
static struct batch *take_ahead(struct batcher *bt) {
        struct batch *b = bt->ahead;

        bt->ahead = NULL;
        if (b && b->epoch != bt->pairs->epoch) {
                batch_give_back(bt, b);
                b = NULL;
        }
        return b;
}

/* Collects the next batch before `committing` is committed, so that it is
 * loaded and applied while Redis runs the commit (struct overlap).  Only from
 * what is buffered already (polling could run a rebalance in the middle of
 * this batch), and only when that makes at least half a batch: a trickle is
 * better collected after a poll.  NULL when there is no such batch. */
static struct batch *prepare_ahead(struct batcher *bt, const struct batch *committing, int64_t now) {
        size_t ready = mergeable(bt->in);
        struct batch *b;

        log_debug("next batch: %zu messages can be merged, %zu buffered", ready, buffered(bt->in));
        bt->ahead_customers = batch_customers(bt);
        if (ready < bt->ahead_customers / 2 + 1 || !(b = calloc(1, sizeof(*b))))
                return NULL;
        if (batch_prepare(bt, b, now, committing->n_due == 0) < 0 || batch_empty(b)) {
                batch_give_back(bt, b);
                return NULL;
        }
        return b;
}

/* Counts the round trips made since *since as the batches'. */
static void count_round_trips(struct batcher *bt, uint64_t *since) {
        bt->env->st.redis_round_trips = mcd_store_round_trips(bt->env->store);
        bt->env->st.redis_batch_round_trips += bt->env->st.redis_round_trips - *since;
        *since = bt->env->st.redis_round_trips;
}

/* A commit whose reply was lost: remembered with one of the batch's pairs
 * (whose offsets the commit moves) to be settled by resolve_unsure().  A
 * batch of due customers only moves no offsets; its counts stay taken back. */
static void note_unsure(struct batcher *bt, const struct batch *b, const struct mcd_stats *before) {
        for (size_t i = 0; i < b->n_items; i++) {
                for (size_t k = 0; k < b->n_pairs && k < bt->pairs->n; k++) {
                        if (bt->pairs->v[k] != b->items[i].pair)
                                continue;
                        bt->unsure.set = true;
                        bt->unsure.partition = bt->pairs->v[k]->partition;
                        bt->unsure.next = b->next[k];
                        memset(&bt->unsure.counted, 0, sizeof(bt->unsure.counted));
                        mcd_stats_add_counts(&bt->unsure.counted, &bt->env->st, before, 1);
                        return;
                }
        }
}

/* Redis answers again: if the unsure commit moved its pair's stored offsets,
 * it was applied, and its counts come back. */
void resolve_unsure(struct batcher *bt) {
        struct mcd_offsets o;
        int r;

        if (!bt->unsure.set)
                return;
        r = mcd_store_get_offsets(bt->env->store, bt->unsure.partition, &o, NULL);
        if (redis_failed(bt->env, r))
                return;
        if (r >= 0 && o.rel >= bt->unsure.next.rel && o.sub >= bt->unsure.next.sub) {
                mcd_stats_add_counts(&bt->env->st, &bt->unsure.counted, NULL, 1);
                log_info("the batch committed as Redis went away was applied; its counts are kept");
        }
        bt->unsure.set = false;
}

/* One batch: load and apply (unless that was done during the last commit),
 * commit with the next batch's load in front, publish. */
int process_batch(struct batcher *bt) {
        struct batch *b = take_ahead(bt), *ahead = NULL;
        struct mcd_stats before = bt->env->st;
        bool commit_sent = false;
        int64_t now = now_ms(), t0 = mono_us(), t_publish = 0, t_commit = 0, t_ahead = 0;
        int64_t span[2] = {0, 0}, split[3] = {0, 0, 0};
        int64_t age_stamped = 0, age_buffered = 0;
        uint64_t rt0 = mcd_store_round_trips(bt->env->store);
        char *marks = NULL;
        int r = 0, load_r = 0, apply_r = 0;
        bool undelivered;

        if (!b) {
                b = calloc(1, sizeof(*b));
                if (!b)
                        return -ENOMEM;
                r = batch_prepare(bt, b, now, true);
                if (r == -EAGAIN) {     /* schema registry unavailable: the messages back in their queues */
                        batch_give_back(bt, b);
                        return r;
                }
                if (r >= 0 && batch_empty(b))
                        goto out;
                if (r >= 0 && b->n_ids > 0)
                        r = batch_load(bt, b);
        }
        if (mcd_log_get_level() >= LOG_DEBUG)
                batch_ages(b, now, &age_stamped, &age_buffered);
        if (b->applied)
                before = bt->ahead_before;      /* applied while the last batch committed */
        else if (r >= 0)
                r = apply_loaded(bt, b, now);
        marks = marks_format(bt->pub);
        if (r >= 0 && !marks)
                r = -ENOMEM;
        t_ahead = mono_us();
        if (r >= 0)
                ahead = prepare_ahead(bt, b, now);
        t_ahead = mono_us() - t_ahead;
        /* The last batch's frames were produced when it was committed, and
         * were delivered while this one was applied; they must all be
         * delivered before this commit, or a stalled instance could have
         * frames in flight when a new owner reconciles the outbox. */
        t_publish = mono_us();
        undelivered = r >= 0 && (publish_busy(bt->pub)) && publish_pending(bt->pub, 10000) < 0;
        t_publish = mono_us() - t_publish;
        if (undelivered) {
                log_warning("the last batch's outputs are not delivered yet; this batch is undone until they are");
                publish_set_stuck(bt->pub);
        }
        /* The wait also checked the fencing of what it published: a pair
         * found taken over or lost meanwhile must not have its customers
         * written by this batch.  Either way the batch (and the next one,
         * collected ahead; it goes back first, being behind in the queues)
         * is undone and collected again. */
        if (r >= 0 && (undelivered || bt->pairs->epoch != b->epoch)) {
                batch_give_back(bt, ahead);
                batch_unapply(bt, b);
                mcd_stats_take_back(&bt->env->st, &before);
                r = -EAGAIN;
                goto out;
        }
        /* The lease of the fencing check starts when the commit is sent. */
        publish_commit_sent(bt->pub, mono_ms());
        if (r >= 0) {
                commit_sent = true;
                t_commit = mono_us();
                r = batch_commit(bt, b, marks, ahead, &load_r, &apply_r, span);
                int64_t t_end = mono_us();
                if (span[0]) {  /* the commit: to the load's reply, the overlap, to the transaction's */
                        split[0] = span[0] - t_commit;
                        split[1] = span[1] - span[0];
                        split[2] = t_end - span[1];
                }
                t_commit = t_end - t_commit;
        }
        if (r < 0) {
                batch_give_back(bt, ahead);
                if (commit_sent && redis_unreachable(r))
                        note_unsure(bt, b, &before);
                mcd_stats_take_back(&bt->env->st, &before);
                batch_abort(bt, r);
                goto out;
        }
        if (ahead && apply_r < 0) {
                /* committed, but the next batch did not load or apply */
                if (load_r < 0 && load_r != -ECANCELED)
                        log_warning("loading the next batch failed: %s; it is collected again",
                                    mcd_store_strerror(load_r));
                else if (load_r == 0)
                        log_warning("applying the next batch failed: %s; it is collected again", strerror(-apply_r));
                redis_failed(bt->env, load_r);
                batch_give_back(bt, ahead);
                ahead = NULL;
        }
        bt->ahead = ahead;
        publish_committed(bt->pub, bt->env->st.batches + 1);
        batch_committed(bt, b);
        bt->env->st.parked = 0;
        for (size_t i = 0; i < b->n_ids; i++)
                bt->env->st.parked += (int64_t)b->customers[i].n_parked;
        r = clog_queue_batch(bt->pub, bt->pairs, b, marks, bt->env->st.batches + 1);
        cache_committed(bt, b);
        fault_point(&bt->fault_stop_before_publish, bt->env->st.batches + 1, "publish");
        /* Produced now; delivery is waited for before the next commit. */
        if (r >= 0)
                publish_pending(bt->pub, 0);
        bt->env->st.batches++;
        bt->env->st.last_batch_ms = now_ms();
        bt->last_batch_us = mono_us() - t0;
        mcd_stats_observe_latency(&bt->env->st, bt->last_batch_us);
        count_round_trips(bt, &rt0);
        if (bt->env->metrics)
                mcd_metrics_update(bt->env->metrics, &bt->env->st);
        log_debug("batch %" PRIu64 ": %zu events, %zu due customers, %zu customers, %" PRId64
                  " us, of which %" PRId64 " us collecting the next batch, %" PRId64
                  " us waiting for the last batch's delivery, %" PRId64
                  " us committing (%" PRId64 " us to the next batch's load, %" PRId64
                  " us freeing the last and applying the next, %" PRId64
                  " us waiting for the transaction after); next batch %s; "
                  "oldest message stamped %" PRId64 " ms ago, buffered %" PRId64 " ms ago; "
                  "%.0f bytes of state per customer, batches of %zu customers",
                  bt->env->st.batches, b->n_items, b->n_due, b->n_ids, bt->last_batch_us, t_ahead, t_publish,
                  t_commit, split[0], split[1], split[2],
                  bt->ahead ? "applied" : "not collected", age_stamped, age_buffered, bt->state_per_customer,
                  bt->ahead ? bt->ahead_customers : batch_customers(bt));
out:
        count_round_trips(bt, &rt0);
        free(marks);
        free_spent(bt);
        if (r >= 0 && commit_sent)
                bt->spent = b;
        else
                batch_recycle(bt, b);
        return r;
}

void batcher_free(struct batcher *bt) {
        batch_destroy(bt->ahead);
        bt->ahead = NULL;
        free_spent(bt);
        for (size_t k = 0; k < ELEMENTSOF(bt->spare); k++) {
                free(bt->spare[k].items);
                bt->spare[k].items = NULL;
        }
}
