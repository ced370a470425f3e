/* pair.c -- one co-partitioned pair of input partitions and its phase
 * (pair.h). */
#include <inttypes.h>
#include <stdlib.h>

#include "daemon/log.h"
#include "daemon/pair.h"

static const char *const pair_phase_names[PAIR_PHASE__COUNT] = {
        [PAIR_INIT] = "INIT",
        [PAIR_RECONCILE] = "RECONCILE",
        [PAIR_READY] = "READY",
        [PAIR_FENCED] = "FENCED",
};

const char *pair_phase_name(enum pair_phase phase) {
        return phase < PAIR_PHASE__COUNT ? pair_phase_names[phase] : "?";
}

struct pair *pair_find(struct pairs *ps, int32_t partition) {
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i]->partition == partition)
                        return ps->v[i];
        return NULL;
}

struct pair *pair_add(struct pairs *ps, int32_t partition) {
        struct pair *p = pair_find(ps, partition), **v;

        if (p)
                return p;
        v = realloc(ps->v, (ps->n + 1) * sizeof(*v));
        if (!v)
                return NULL;
        ps->v = v;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->partition = partition;
        p->phase = PAIR_INIT;
        p->expect[REL] = p->expect[SUB] = -1;
        p->first[REL] = p->first[SUB] = -1;
        p->stream_time = INT64_MIN;
        p->clog_hold = UINT64_MAX;
        ps->v[ps->n++] = p;
        ps->epoch++;
        return p;
}

/* A pair leaves READY: its customers' states leave the state cache. */
static void cache_close(struct pairs *ps, int32_t partition) {
        size_t n = mcd_state_cache_close(ps->cache, partition);

        if (n > 0)
                log_info("partition %" PRId32 ": %zu customers' states dropped from the state cache", partition, n);
}

void pairs_drop(struct pairs *ps, int32_t partition) {
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i]->partition == partition) {
                        if (ps->v[i]->phase == PAIR_READY)
                                cache_close(ps, partition);
                        redo_forget(ps->v[i]);
                        pair_forget_lost(ps->v[i], NULL, 0);
                        free(ps->v[i]->origin_marks);
                        q_free(&ps->v[i]->q[REL]);
                        q_free(&ps->v[i]->q[SUB]);
                        free(ps->v[i]);
                        ps->v[i] = ps->v[--ps->n];
                        ps->epoch++;
                        return;
                }
}

size_t pair_index(const struct pairs *ps, const struct pair *p) {
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i] == p)
                        return i;
        return 0;
}

static bool claiming(enum pair_phase phase) {
        return phase == PAIR_INIT || phase == PAIR_RECONCILE;
}

void pair_set_phase(struct pairs *ps, struct pair *p, enum pair_phase phase) {
        if (p->phase == phase)
                return;
        log_debug("pair %d: %s -> %s", (int)p->partition, pair_phase_name(p->phase), pair_phase_name(phase));
        if (!claiming(p->phase) || !claiming(phase))
                ps->epoch++;
        if (p->phase == PAIR_READY)
                cache_close(ps, p->partition);
        p->phase = phase;
        if (phase == PAIR_READY)
                mcd_state_cache_open(ps->cache, p->partition);
}

bool all_ready(const struct pairs *ps) {
        if (ps->n == 0)
                return false;
        for (size_t i = 0; i < ps->n; i++)
                if (ps->v[i]->phase != PAIR_READY)
                        return false;
        return true;
}

void pairs_fence(struct pairs *ps, struct pair *p) {
        ps->hooks.fence(ps->hooks.ctx, p);
}

void pairs_restart(struct pairs *ps, struct pair *p) {
        ps->hooks.restart(ps->hooks.ctx, p);
}

void redo_forget(struct pair *p) {
        p->redo = false;
        p->redo_seen = 0;
        p->redo_covered = false;
        p->redo_held_since = 0;
        free(p->redo_marks);
        p->redo_marks = NULL;
}

const char *pair_marks(const struct pair *p, const char *marks) {
        return p->redo ? p->redo_marks : marks;
}

void pair_forget_lost(struct pair *p, char **keys, size_t n) {
        mcd_store_ids_free(p->clog_forget, p->n_clog_forget);
        p->clog_forget = keys;
        p->n_clog_forget = n;
}
