/* strmap.h -- a small open-addressing hash map from strings to pointers,
 * for per-batch customer lookup, replay's customers and sets of ids.
 * Keys are copied; values are borrowed (the caller owns them). */
#ifndef MCD_STRMAP_H
#define MCD_STRMAP_H

#include <stddef.h>

struct mcd_strmap {
        char **keys;
        void **values;
        size_t size;                 /* slots, a power of two (0 when empty) */
        size_t n;
};

/* The value of key, or NULL. */
void *mcd_strmap_get(const struct mcd_strmap *m, const char *key);
/* Inserts or replaces. 0 or -ENOMEM. */
int mcd_strmap_put(struct mcd_strmap *m, const char *key, void *value);
/* Frees the keys and slots (not the values) and empties the map. */
void mcd_strmap_clear(struct mcd_strmap *m);

#endif
