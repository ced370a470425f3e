/* strmap.h -- a small open-addressing hash map from strings to pointers,
 * for per-batch customer lookup, replay's customers and sets of ids.
 * Keys are copied, or borrowed when a map is filled by
 * mcd_strmap_put_borrowed; values are borrowed (the caller owns them). */
#ifndef MCD_STRMAP_H
#define MCD_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mcd_strmap_slot {
        uint64_t hash;               /* the key's; 0 when the slot is free */
        char *key;                   /* a copy or the caller's (borrowed), NULL when free */
        void *value;                 /* borrowed */
};

struct mcd_strmap {
        struct mcd_strmap_slot *slots;
        size_t size;                 /* slots, a power of two (0 when empty) */
        size_t n;                    /* keys */
        bool borrowed;               /* the keys are the caller's: not copied, not freed */
};

/* The value of key, or NULL. */
void *mcd_strmap_get(const struct mcd_strmap *m, const char *key);
/* Inserts or replaces. 0 or -ENOMEM. */
int mcd_strmap_put(struct mcd_strmap *m, const char *key, void *value);
/* As mcd_strmap_put, but a new key is not copied: it stays the caller's and
 * must outlive its place in the map (until mcd_strmap_clear).  A map holds
 * keys of one kind: -EINVAL when m holds copied keys (and mcd_strmap_put's
 * when it holds borrowed ones). */
int mcd_strmap_put_borrowed(struct mcd_strmap *m, const char *key, void *value);
/* Slot i's key (its value in *value), NULL when the slot is free: walking
 * i from 0 to m->size visits every key once, in no order. */
const char *mcd_strmap_at(const struct mcd_strmap *m, size_t i, void **value);
/* Frees the keys and slots (not the values) and empties the map. */
void mcd_strmap_clear(struct mcd_strmap *m);

#endif
