/* test_strmap.c -- daemon/strmap.c: a key maps to its last value; keys are
 * copies, or the caller's when borrowed (never both in one map); the map grows past its first slots keeping every key; walking
 * the slots visits each key once; clearing empties it.  And macro.h's
 * zalloc_array, which makes the map's slots. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/macro.h"
#include "daemon/strmap.h"
#include "tests/tap.h"

static void test_put_get(void) {
        struct mcd_strmap m = {0};
        char key[] = "alice";
        int a = 1, b = 2;

        ok(mcd_strmap_get(&m, "alice") == NULL, "an empty map holds nothing");
        ok(mcd_strmap_put(&m, key, &a) == 0, "a put succeeds");
        key[0] = 'X';
        ok(mcd_strmap_get(&m, "alice") == &a, "the key is a copy: found after the caller's buffer changed");
        ok(mcd_strmap_get(&m, "Xlice") == NULL, "and the changed buffer is not a key");
        ok(mcd_strmap_put(&m, "alice", &b) == 0 && mcd_strmap_get(&m, "alice") == &b && m.n == 1,
           "a second put replaces the value, one key");
        ok(mcd_strmap_get(&m, "alic") == NULL && mcd_strmap_get(&m, "") == NULL, "a prefix or \"\" is not found");
        mcd_strmap_clear(&m);
        ok(m.n == 0 && m.size == 0 && mcd_strmap_get(&m, "alice") == NULL, "clear empties the map");
        mcd_strmap_clear(&m);
}

/* Borrowed keys: the map keeps the caller's pointers (a change to the
 * buffer is a change to the key) and clear leaves them to the caller
 * (valgrind and ASan would name a free of the stack buffers). */
static void test_borrowed(void) {
        struct mcd_strmap m = {0};
        char alice[] = "alice", bob[] = "bob";
        int a = 1, b = 2;
        size_t i;
        void *v;

        ok(mcd_strmap_put_borrowed(&m, alice, &a) == 0 && mcd_strmap_put_borrowed(&m, bob, &b) == 0 && m.n == 2,
           "borrowed puts succeed");
        for (i = 0; i < m.size && mcd_strmap_at(&m, i, &v) != alice; i++)
                ;
        ok(i < m.size && v == &a, "the map holds the caller's pointer, not a copy");
        ok(mcd_strmap_put_borrowed(&m, "alice", &b) == 0 && mcd_strmap_get(&m, alice) == &b && m.n == 2,
           "a second put of an equal key replaces the value");
        ok(mcd_strmap_put(&m, "carol", &a) == -EINVAL && mcd_strmap_get(&m, "carol") == NULL,
           "a copied key is refused in a map of borrowed ones");
        mcd_strmap_clear(&m);
        ok(m.n == 0 && !m.borrowed, "clear empties it (the keys stay the caller's)");
        ok(mcd_strmap_put(&m, "carol", &a) == 0 && mcd_strmap_put_borrowed(&m, bob, &b) == -EINVAL,
           "emptied, it takes copied keys; then a borrowed one is refused");
        mcd_strmap_clear(&m);
}

#define MANY 50000

static void test_many(void) {
        struct mcd_strmap m = {0};
        char key[32];
        size_t found = 0, visited = 0, sum = 0;
        int ok_put = 1;

        for (uintptr_t i = 1; i <= MANY; i++) {
                snprintf(key, sizeof(key), "customer-%lu", (unsigned long)i);
                ok_put &= mcd_strmap_put(&m, key, (void *)i) == 0;
        }
        ok(ok_put && m.n == MANY, "%d keys put", MANY);
        ok(m.size >= 2 * MANY && (m.size & (m.size - 1)) == 0, "the slots grew to a power of two at least twice the keys");
        for (uintptr_t i = 1; i <= MANY; i++) {
                snprintf(key, sizeof(key), "customer-%lu", (unsigned long)i);
                found += (uintptr_t)mcd_strmap_get(&m, key) == i;
        }
        ok(found == MANY, "every key maps to its value after growing (%zu)", found);
        for (size_t i = 0; i < m.size; i++) {
                void *v = NULL;
                const char *k = mcd_strmap_at(&m, i, &v);
                if (k) {
                        visited++;
                        sum += (uintptr_t)v;
                        if (mcd_strmap_get(&m, k) != v)
                                sum = 0;
                }
        }
        ok(visited == MANY && sum == (size_t)MANY * (MANY + 1) / 2, "walking the slots visits each key once, with its value");
        ok(mcd_strmap_at(&m, m.size, NULL) == NULL, "a slot past the end is none");
        mcd_strmap_clear(&m);
}

/* zalloc_array: zeroed memory, a block for none, NULL on an overflowing
 * size, the same block reused zeroed again after a free. */
static void test_zalloc(void) {
        size_t n = 100000, zeros = 0;
        uint64_t *v = zalloc_array(n, sizeof(*v));
        void *none = zalloc_array(0, 8);

        ok(v != NULL, "zalloc_array makes %zu words", n);
        for (size_t i = 0; v && i < n; i++)
                zeros += v[i] == 0;
        ok(zeros == n, "all zero");
        if (v)
                memset(v, 0xa5, n * sizeof(*v));
        free(v);
        v = zalloc_array(n, sizeof(*v));
        zeros = 0;
        for (size_t i = 0; v && i < n; i++)
                zeros += v[i] == 0;
        ok(v && zeros == n, "made again after a dirty free: all zero");
        free(v);
        ok(none != NULL, "none of them: still a block to free");
        free(none);
        ok(zalloc_array(SIZE_MAX / 2, 4) == NULL, "n * size past SIZE_MAX: NULL");
}

int main(void) {
        test_zalloc();
        test_put_get();
        test_many();
        test_borrowed();
        return tap_done();
}
