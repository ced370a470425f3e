/* test_state_cache.c -- daemon/state_cache.c: a state is held only for an
 * open partition and only once put, as a copy; the least recently used go
 * first when the bytes run out, a get counting as a use;
 * closing or reopening a partition drops its customers and no other's; a
 * smaller bound evicts at once; the table grows past its first buckets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/state_cache.h"
#include "tests/tap.h"

/* Puts text as id's state (from a buffer overwritten at once: the cache
 * must keep a copy); true when the cache took it. */
static bool put(struct mcd_state_cache *c, const char *id, int32_t partition, const char *text) {
        char *state = strdup(text);
        bool taken = mcd_state_cache_put(c, id, partition, state, strlen(text));

        memset(state, '?', strlen(text));
        free(state);
        return taken;
}

/* id's state as text ("" when not held). */
static const char *get(struct mcd_state_cache *c, const char *id) {
        static char buf[256];
        size_t len = 0;
        const char *s = mcd_state_cache_get(c, id, &len);

        if (!s)
                return "";
        snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
        return buf;
}

static void test_open_close(void) {
        struct mcd_state_cache *c = NULL;

        ok(mcd_state_cache_new(1 << 20, &c) == 0 && c, "a cache of 1 MiB is made");
        ok(!put(c, "alice", 3, "A1"), "a put for a partition never opened is refused");
        is_str(get(c, "alice"), "", "and nothing is held");
        mcd_state_cache_open(c, 3);
        mcd_state_cache_open(c, 7);
        ok(put(c, "alice", 3, "A1") && put(c, "bob", 7, "B1"), "puts for open partitions are taken");
        is_str(get(c, "alice"), "A1", "alice's state is held");
        ok(put(c, "alice", 3, "A2"), "a second put replaces the first");
        is_str(get(c, "alice"), "A2", "the newer state is the one held");
        is_int(mcd_state_cache_entries(c), 2, "two entries");
        mcd_state_cache_close(c, 3);
        is_str(get(c, "alice"), "", "closing partition 3 drops alice");
        is_str(get(c, "bob"), "B1", "and keeps bob, of partition 7");
        ok(!put(c, "alice", 3, "A3"), "a closed partition takes no state");
        mcd_state_cache_open(c, 7);
        is_str(get(c, "bob"), "", "opening partition 7 again drops what it held");
        is_int(mcd_state_cache_entries(c), 0, "no entry left");
        mcd_state_cache_free(c);
}

static void test_lru(void) {
        struct mcd_state_cache *c = NULL;
        char state[101];
        size_t empty, one;

        memset(state, 's', 100);
        state[100] = '\0';
        mcd_state_cache_new(1 << 20, &c);
        mcd_state_cache_open(c, 0);
        empty = mcd_state_cache_bytes(c);
        put(c, "c0", 0, state);
        one = mcd_state_cache_bytes(c) - empty;
        ok(one >= 100 + 3 && one < 300, "an entry costs its state, its id and some bookkeeping (%zu bytes)", one);
        mcd_state_cache_free(c);

        mcd_state_cache_new(empty + 3 * one, &c);      /* room for three entries */
        mcd_state_cache_open(c, 0);
        put(c, "c1", 0, state);
        put(c, "c2", 0, state);
        put(c, "c3", 0, state);
        is_int(mcd_state_cache_entries(c), 3, "three entries fit");
        ok(strlen(get(c, "c1")) == 100, "c1 is used: now the most recent");
        put(c, "c4", 0, state);
        is_str(get(c, "c2"), "", "a fourth entry evicts the least recently used, c2");
        ok(*get(c, "c1") && *get(c, "c3") && *get(c, "c4"), "c1, c3 and c4 are held");
        ok(mcd_state_cache_bytes(c) <= empty + 3 * one, "within the bound");
        mcd_state_cache_set_max(c, empty + one);
        is_int(mcd_state_cache_entries(c), 1, "a bound of one entry keeps one");
        ok(*get(c, "c4"), "the most recently used, c4");
        {
                size_t n = 2 * one;
                char *big = malloc(n + 1);
                memset(big, 'b', n);
                big[n] = '\0';
                ok(!mcd_state_cache_put(c, "huge", 0, big, n), "a state larger than the whole cache is refused");
                ok(*get(c, "c4"), "and evicts nothing");
                free(big);
        }
        mcd_state_cache_free(c);
}

static void test_many(void) {
        struct mcd_state_cache *c = NULL;
        char id[32];
        int held = 0;

        mcd_state_cache_new(64 << 20, &c);
        for (int p = 0; p < 4; p++)
                mcd_state_cache_open(c, p);
        for (int i = 0; i < 20000; i++) {
                snprintf(id, sizeof(id), "customer-%d", i);
                put(c, id, i % 4, id);
        }
        for (int i = 0; i < 20000; i++) {
                snprintf(id, sizeof(id), "customer-%d", i);
                held += strcmp(get(c, id), id) == 0;
        }
        is_int(held, 20000, "20,000 customers put, every one found with its own state");
        mcd_state_cache_close(c, 2);
        is_int(mcd_state_cache_entries(c), 15000, "closing one of four partitions drops a quarter");
        mcd_state_cache_free(c);
}

static void test_null(void) {
        struct mcd_state_cache *c = (struct mcd_state_cache *)1;
        const char *state = "x";

        ok(mcd_state_cache_new(0, &c) == 0 && c == NULL, "cache.max_bytes = 0 makes no cache");
        mcd_state_cache_open(NULL, 1);
        ok(!mcd_state_cache_put(NULL, "a", 1, state, 1), "no cache takes nothing");
        ok(mcd_state_cache_get(NULL, "a", &(size_t){0}) == NULL, "and holds nothing");
        mcd_state_cache_close(NULL, 1);
        mcd_state_cache_free(NULL);
}

int main(void) {
        test_open_close();
        test_lru();
        test_many();
        test_null();
        return tap_done();
}
