/* strmap.c -- open-addressing (linear probing) string map, FNV-1a hashed. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/strmap.h"

static uint64_t hash(const char *s) {
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

static size_t slot(const struct mcd_strmap *m, const char *key) {
        size_t i = hash(key) & (m->size - 1);
        while (m->keys[i] && strcmp(m->keys[i], key) != 0)
                i = (i + 1) & (m->size - 1);
        return i;
}

void *mcd_strmap_get(const struct mcd_strmap *m, const char *key) {
        size_t i;
        if (m->size == 0)
                return NULL;
        i = slot(m, key);
        return m->keys[i] ? m->values[i] : NULL;
}

static int grow(struct mcd_strmap *m) {
        struct mcd_strmap bigger = {.size = m->size ? m->size * 2 : 64};

        bigger.keys = calloc(bigger.size, sizeof(char *));
        bigger.values = calloc(bigger.size, sizeof(void *));
        if (!bigger.keys || !bigger.values) {
                free(bigger.keys);
                free(bigger.values);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->size; i++)
                if (m->keys[i]) {
                        size_t j = slot(&bigger, m->keys[i]);
                        bigger.keys[j] = m->keys[i];
                        bigger.values[j] = m->values[i];
                }
        bigger.n = m->n;
        free(m->keys);
        free(m->values);
        *m = bigger;
        return 0;
}

int mcd_strmap_put(struct mcd_strmap *m, const char *key, void *value) {
        size_t i;
        int r;

        if ((m->n + 1) * 2 > m->size && (r = grow(m)) < 0)
                return r;
        i = slot(m, key);
        if (!m->keys[i]) {
                m->keys[i] = strdup(key);
                if (!m->keys[i])
                        return -ENOMEM;
                m->n++;
        }
        m->values[i] = value;
        return 0;
}

void mcd_strmap_clear(struct mcd_strmap *m) {
        for (size_t i = 0; i < m->size; i++)
                free(m->keys[i]);
        free(m->keys);
        free(m->values);
        *m = (struct mcd_strmap){0};
}
