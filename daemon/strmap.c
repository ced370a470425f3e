/* strmap.c -- open-addressing (linear probing) string map (strmap.h).
 *
 * DESIGN: a slot keeps its key's hash (XXH3) beside the key, so a probe
 * compares strings only when the hashes are equal and growing never hashes
 * a key again; one slot is one cache line's share, not three arrays'. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "daemon/macro.h"
#include "daemon/strmap.h"

/* Never 0: 0 marks a free slot. */
static uint64_t hash(const char *s) {
        uint64_t h = XXH3_64bits(s, strlen(s));
        return h ? h : 1;
}

/* The slot holding key (hash h), else the free slot where it would go. */
static size_t slot(const struct mcd_strmap *m, const char *key, uint64_t h) {
        size_t mask = m->size - 1, i = (size_t)h & mask;

        while (m->slots[i].hash && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
                i = (i + 1) & mask;
        return i;
}

void *mcd_strmap_get(const struct mcd_strmap *m, const char *key) {
        size_t i;

        if (m->size == 0)
                return NULL;
        i = slot(m, key, hash(key));
        return m->slots[i].hash ? m->slots[i].value : NULL;
}

/* Twice the slots, the keys moved without hashing them again. */
static int grow(struct mcd_strmap *m) {
        size_t size = m->size ? m->size * 2 : 64, mask = size - 1;
        struct mcd_strmap_slot *slots = zalloc_array(size, sizeof(*slots));

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < m->size; i++) {
                size_t j;

                if (!m->slots[i].hash)
                        continue;
                for (j = (size_t)m->slots[i].hash & mask; slots[j].hash; j = (j + 1) & mask)
                        ;
                slots[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = slots;
        m->size = size;
        return 0;
}

/* Inserts or replaces; a new key is copied unless borrowed. */
static int put(struct mcd_strmap *m, const char *key, void *value, bool borrow) {
        uint64_t h = hash(key);
        size_t i;
        int r;

        if (m->n > 0 && m->borrowed != borrow)
                return -EINVAL;
        if ((m->n + 1) * 2 > m->size && (r = grow(m)) < 0)
                return r;
        i = slot(m, key, h);
        if (!m->slots[i].hash) {
                char *k = borrow ? (char *)key : strdup(key);

                if (!k)
                        return -ENOMEM;
                m->slots[i] = (struct mcd_strmap_slot){.hash = h, .key = k};
                m->borrowed = borrow;
                m->n++;
        }
        m->slots[i].value = value;
        return 0;
}

int mcd_strmap_put(struct mcd_strmap *m, const char *key, void *value) {
        return put(m, key, value, false);
}

int mcd_strmap_put_borrowed(struct mcd_strmap *m, const char *key, void *value) {
        return put(m, key, value, true);
}

const char *mcd_strmap_at(const struct mcd_strmap *m, size_t i, void **value) {
        if (i >= m->size || !m->slots[i].hash)
                return NULL;
        if (value)
                *value = m->slots[i].value;
        return m->slots[i].key;
}

void mcd_strmap_clear(struct mcd_strmap *m) {
        for (size_t i = 0; i < m->size && !m->borrowed; i++)
                free(m->slots[i].key);
        free(m->slots);
        *m = (struct mcd_strmap){0};
}
