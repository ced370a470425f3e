/* strmap.h -- a small open-addressing hash map from strings to pointers,
 * for per-batch customer lookup, replay's customers and sets of ids.
 * Keys are copied; values are borrowed (the caller owns them). */
#ifndef MCD_STRMAP_H
#define MCD_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct mcd_strmap_slot {
        uint64_t hash;               /* the key's; 0 when the slot is free */
        char *key;                   /* a copy, NULL when free */
        void *value;                 /* borrowed */
};

struct mcd_strmap {
        struct mcd_strmap_slot *slots;
        size_t size;                 /* slots, a power of two (0 when empty) */
        size_t n;                    /* keys */
};

/* The value of key, or NULL. */
void *mcd_strmap_get(const struct mcd_strmap *m, const char *key);
/* Inserts or replaces. 0 or -ENOMEM. */
int mcd_strmap_put(struct mcd_strmap *m, const char *key, void *value);
/* Slot i's key (its value in *value), NULL when the slot is free: walking
 * i from 0 to m->size visits every key once, in no order. */
const char *mcd_strmap_at(const struct mcd_strmap *m, size_t i, void **value);
/* Frees the keys and slots (not the values) and empties the map. */
void mcd_strmap_clear(struct mcd_strmap *m);

#endif
