/* seen.h -- the event ids a customer has seen (CONTRACT.md rule 1), bounded
 * by the contract's "Bounds".
 *
 * DESIGN
 * An id is kept as a 64-bit XXH3 hash of its bytes with its event's
 * occurred_at, 16 bytes whatever the id's length: 10,000 of them take
 * 160 KB.  Two different ids of one customer collide with a probability of
 * about n^2 / 2^65 (3e-12 for 10,000 ids); a collision would drop the second
 * event as a duplicate, in replay and in the daemon alike.
 *
 * The ids live in an array ordered by occurred_at, ties in the order they
 * were seen, so that forgetting (by the window, by the count) always takes
 * from the front; `head` makes that O(1).  A set of the hashes (open
 * addressing, linear probing) answers "seen?" once there are more than a
 * handful; it is derived and rebuilt as needed.  Nothing here allocates
 * except to add. */
#ifndef MCD_SEEN_H
#define MCD_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t mcd_time_t;

struct mcd_seen_id {
        uint64_t hash;               /* mcd_id_hash(event_id), never 0 */
        int64_t occurred_at;         /* of the event; MCD_SEEN_LEGACY until stamped */
};

/* The occurred_at of ids read from a state written before ids had one;
 * mcd_seen_stamp_legacy() gives them a time. */
#define MCD_SEEN_LEGACY INT64_MIN

struct mcd_seen {
        struct mcd_seen_id *v;       /* [head, n): by occurred_at, then first seen */
        size_t head, n, cap;
        uint64_t *slots;             /* set of the live hashes, 0 = empty; NULL while few */
        size_t n_slots;              /* a power of two, or 0 */
        bool has_forgot;             /* the count has forgotten an id */
        int64_t forgot_at;           /* occurred_at of the last id the count forgot */
};

/* The hash an id is kept as: XXH3-64 of its bytes, 0 mapped to 1. */
uint64_t mcd_id_hash(const char *id);
uint64_t mcd_id_hash_n(const void *id, size_t len);

static inline size_t mcd_seen_count(const struct mcd_seen *s) {
        return s->n - s->head;
}
static inline const struct mcd_seen_id *mcd_seen_ids(const struct mcd_seen *s) {
        return s->v ? s->v + s->head : NULL;
}

bool mcd_seen_has(const struct mcd_seen *s, uint64_t hash);

/* Records hash at occurred_at, after every id of the same or an earlier time.
 * A hash already present is left as it is.  0 or -ENOMEM. */
int mcd_seen_add(struct mcd_seen *s, uint64_t hash, int64_t occurred_at);

/* The customer's horizon (CONTRACT.md "Bounds"): the later of latest - window
 * and 1 ms after the last id the count forgot.  False when there is none
 * (nothing seen yet).  This function can't fail. */
bool mcd_seen_horizon(const struct mcd_seen *s, int64_t window, int64_t *horizon);

/* Forgets the ids older than latest - window, then the earliest ones past
 * max_ids (at least 1), remembering the last of those.  This function can't
 * fail. */
void mcd_seen_forget(struct mcd_seen *s, int64_t window, size_t max_ids);

/* Gives ids read without a time (MCD_SEEN_LEGACY) the time t.  True when
 * there were any. */
bool mcd_seen_stamp_legacy(struct mcd_seen *s, int64_t t);

/* Deep copy into an empty dst; 0 or -ENOMEM. */
int mcd_seen_copy(struct mcd_seen *dst, const struct mcd_seen *src);

/* Frees everything; s may be zeroed or NULL. */
void mcd_seen_clear(struct mcd_seen *s);

#endif
