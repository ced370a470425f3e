/* seen.c -- a customer's seen event ids, bounded by window and count.
 * See seen.h for the design. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "seen.h"

/* Up to this many live ids a scan is cheaper than the set. */
#define SEEN_SCAN_MAX 16

uint64_t mcd_id_hash_n(const void *id, size_t len) {
        uint64_t h = XXH3_64bits(id, len);

        return h ? h : 1;
}

uint64_t mcd_id_hash(const char *id) {
        return mcd_id_hash_n(id, strlen(id));
}

/* ------------------------------------------------------------- the set -- */

static size_t slot_of(const struct mcd_seen *s, uint64_t hash) {
        size_t mask = s->n_slots - 1, i = (size_t)hash & mask;

        while (s->slots[i] && s->slots[i] != hash)
                i = (i + 1) & mask;
        return i;
}

static void set_put(struct mcd_seen *s, uint64_t hash) {
        s->slots[slot_of(s, hash)] = hash;
}

/* Removes hash by shifting back the entries of its probe run (no
 * tombstones).  This function can't fail. */
static void set_remove(struct mcd_seen *s, uint64_t hash) {
        size_t mask = s->n_slots - 1, i = slot_of(s, hash), j = i;

        if (!s->slots[i])
                return;
        for (;;) {
                size_t k;
                j = (j + 1) & mask;
                if (!s->slots[j])
                        break;
                k = (size_t)s->slots[j] & mask;
                if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                        continue;               /* j's home lies after the hole */
                s->slots[i] = s->slots[j];
                i = j;
        }
        s->slots[i] = 0;
}

/* Makes the set hold every live id with room for one more, or drops it
 * while there are few.  0 or -ENOMEM. */
static int set_fit(struct mcd_seen *s, size_t live) {
        size_t want = 64;
        uint64_t *slots;

        if (live <= SEEN_SCAN_MAX) {
                free(s->slots);
                s->slots = NULL;
                s->n_slots = 0;
                return 0;
        }
        if (s->slots && live * 2 < s->n_slots)
                return 0;
        while (want < live * 4)
                want *= 2;
        slots = calloc(want, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        free(s->slots);
        s->slots = slots;
        s->n_slots = want;
        for (size_t i = s->head; i < s->n; i++)
                set_put(s, s->v[i].hash);
        return 0;
}

/* ---------------------------------------------------------- the list -- */

bool mcd_seen_has(const struct mcd_seen *s, uint64_t hash) {
        if (s->slots)
                return s->slots[slot_of(s, hash)] == hash;
        for (size_t i = s->head; i < s->n; i++)
                if (s->v[i].hash == hash)
                        return true;
        return false;
}

/* Room for one more at the end, moving the live ids to the front when the
 * forgotten ones take half the array.  0 or -ENOMEM. */
static int list_reserve(struct mcd_seen *s) {
        size_t live = mcd_seen_count(s), ncap;
        struct mcd_seen_id *v;

        if (s->head > 0 && s->head >= live) {
                memmove(s->v, s->v + s->head, live * sizeof(*s->v));
                s->head = 0;
                s->n = live;
        }
        if (s->n < s->cap)
                return 0;
        ncap = s->cap ? s->cap * 2 : 8;
        v = realloc(s->v, ncap * sizeof(*v));
        if (!v)
                return -ENOMEM;
        s->v = v;
        s->cap = ncap;
        return 0;
}

int mcd_seen_add(struct mcd_seen *s, uint64_t hash, int64_t occurred_at) {
        size_t pos;
        int r;

        if (mcd_seen_has(s, hash))
                return 0;
        if ((r = list_reserve(s)) < 0 || (r = set_fit(s, mcd_seen_count(s) + 1)) < 0)
                return r;
        pos = s->n;                     /* after every id of the same or an earlier time */
        while (pos > s->head && s->v[pos - 1].occurred_at > occurred_at)
                pos--;
        memmove(&s->v[pos + 1], &s->v[pos], (s->n - pos) * sizeof(*s->v));
        s->v[pos] = (struct mcd_seen_id){.hash = hash, .occurred_at = occurred_at};
        s->n++;
        if (s->slots)
                set_put(s, hash);
        return 0;
}

/* Drops the earliest id.  This function can't fail. */
static void forget_first(struct mcd_seen *s) {
        if (s->slots)
                set_remove(s, s->v[s->head].hash);
        s->head++;
}

bool mcd_seen_horizon(const struct mcd_seen *s, int64_t window, int64_t *horizon) {
        int64_t latest, h;

        if (mcd_seen_count(s) == 0)
                return false;
        latest = s->v[s->n - 1].occurred_at;
        h = latest - window;
        if (s->has_forgot && s->forgot_at + 1 > h)
                h = s->forgot_at + 1;
        *horizon = h;
        return true;
}

void mcd_seen_forget(struct mcd_seen *s, int64_t window, size_t max_ids) {
        int64_t cutoff;

        if (mcd_seen_count(s) == 0)
                return;
        cutoff = s->v[s->n - 1].occurred_at - window;
        while (s->v[s->head].occurred_at < cutoff)
                forget_first(s);
        while (mcd_seen_count(s) > (max_ids ? max_ids : 1)) {
                s->has_forgot = true;
                s->forgot_at = s->v[s->head].occurred_at;
                forget_first(s);
        }
        if (s->slots && mcd_seen_count(s) <= SEEN_SCAN_MAX)
                (void)set_fit(s, mcd_seen_count(s));    /* frees; can't fail */
}

bool mcd_seen_stamp_legacy(struct mcd_seen *s, int64_t t) {
        bool any = false;

        /* Legacy ids sort first; every later id has a real time. */
        for (size_t i = s->head; i < s->n && s->v[i].occurred_at == MCD_SEEN_LEGACY; i++) {
                s->v[i].occurred_at = t;
                any = true;
        }
        if (!any)
                return false;
        /* Stamped ids keep their order; move any real id earlier than t
         * before them (insertion sort: they were sorted among themselves). */
        for (size_t i = s->head + 1; i < s->n; i++) {
                struct mcd_seen_id x = s->v[i];
                size_t j = i;
                while (j > s->head && s->v[j - 1].occurred_at > x.occurred_at) {
                        s->v[j] = s->v[j - 1];
                        j--;
                }
                s->v[j] = x;
        }
        return true;
}

int mcd_seen_copy(struct mcd_seen *dst, const struct mcd_seen *src) {
        size_t live = mcd_seen_count(src);

        memset(dst, 0, sizeof(*dst));
        dst->has_forgot = src->has_forgot;
        dst->forgot_at = src->forgot_at;
        if (live == 0)
                return 0;
        dst->v = malloc(live * sizeof(*dst->v));
        if (!dst->v)
                return -ENOMEM;
        memcpy(dst->v, src->v + src->head, live * sizeof(*dst->v));
        dst->n = dst->cap = live;
        if (set_fit(dst, live) < 0) {
                mcd_seen_clear(dst);
                return -ENOMEM;
        }
        return 0;
}

void mcd_seen_clear(struct mcd_seen *s) {
        if (!s)
                return;
        free(s->v);
        free(s->slots);
        memset(s, 0, sizeof(*s));
}
