/* state_cache.c -- customers' committed states kept in process, bounded by
 * bytes, least recently used out (state_cache.h).
 *
 * DESIGN: one allocation per entry, its id and state inline, chained in a
 * hash table of a power-of-two size that doubles when entries outnumber
 * buckets, and threaded on a doubly linked list from least to most recently
 * used.  An entry costs what the allocator gave it (malloc_usable_size: the
 * size class, not the bytes asked for); those and the table's buckets are
 * what max_bytes bounds.  Closing a partition walks every entry; partitions change hands seldom, batches look
 * up thousands of customers. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/state_cache.h"
#include "handlers/seen.h"

#define MAX_PARTITIONS (1 << 20)     /* partitions above are never opened: nothing of them kept */
#define MIN_BUCKETS 1024

struct entry {
        struct entry *hnext;         /* next in its bucket */
        struct entry *older, *newer; /* neighbours by last use */
        uint64_t hash;
        size_t cost;                 /* bytes counted against max_bytes */
        size_t len;                  /* of the state */
        int32_t partition;
        uint32_t idlen;              /* of the id */
        char id[];                   /* the customer id, NUL-terminated, then the state: stored form, as
                                      * committed (state_codec.h) */
};

struct mcd_state_cache {
        struct entry **buckets;
        size_t n_buckets;            /* a power of two */
        size_t n;                    /* entries */
        struct entry *oldest, *newest;
        size_t bytes;                /* the entries' (their cost) */
        size_t max_bytes;
        uint8_t *open;               /* per partition: its pair is READY */
        size_t n_open;               /* partitions open[] has room for */
};

int mcd_state_cache_new(size_t max_bytes, struct mcd_state_cache **out) {
        struct mcd_state_cache *c;

        *out = NULL;
        if (max_bytes == 0)
                return 0;
        c = calloc(1, sizeof(*c));
        if (!c || !(c->buckets = calloc(MIN_BUCKETS, sizeof(*c->buckets)))) {
                free(c);
                return -ENOMEM;
        }
        c->n_buckets = MIN_BUCKETS;
        c->max_bytes = max_bytes;
        *out = c;
        return 0;
}

static void lru_unlink(struct mcd_state_cache *c, struct entry *e) {
        if (e->older)
                e->older->newer = e->newer;
        else
                c->oldest = e->newer;
        if (e->newer)
                e->newer->older = e->older;
        else
                c->newest = e->older;
        e->older = e->newer = NULL;
}

static void lru_push(struct mcd_state_cache *c, struct entry *e) {
        e->older = c->newest;
        e->newer = NULL;
        if (c->newest)
                c->newest->newer = e;
        else
                c->oldest = e;
        c->newest = e;
}

/* The link that points at the entry of id (or at NULL where it would go). */
static struct entry **find(const struct mcd_state_cache *c, const char *id, uint64_t hash) {
        struct entry **at = &c->buckets[hash & (c->n_buckets - 1)];

        while (*at && ((*at)->hash != hash || strcmp((*at)->id, id) != 0))
                at = &(*at)->hnext;
        return at;
}

/* Unlinks and frees an entry. */
static void drop(struct mcd_state_cache *c, struct entry *e) {
        struct entry **at = find(c, e->id, e->hash);

        *at = e->hnext;
        lru_unlink(c, e);
        c->bytes -= e->cost;
        c->n--;
        free(e);
}

/* Bytes held: the entries and the table. */
static size_t used(const struct mcd_state_cache *c) {
        return c->bytes + c->n_buckets * sizeof(*c->buckets);
}

static void evict(struct mcd_state_cache *c) {
        while (used(c) > c->max_bytes && c->oldest)
                drop(c, c->oldest);
}

void mcd_state_cache_free(struct mcd_state_cache *c) {
        if (!c)
                return;
        while (c->oldest)
                drop(c, c->oldest);
        free(c->buckets);
        free(c->open);
        free(c);
}

void mcd_state_cache_set_max(struct mcd_state_cache *c, size_t max_bytes) {
        if (!c)
                return;
        c->max_bytes = max_bytes;
        evict(c);
}

/* Drops a partition's entries; returns how many. */
static size_t drop_partition(struct mcd_state_cache *c, int32_t partition) {
        struct entry *e = c->oldest, *next;
        size_t n = 0;

        for (; e; e = next) {
                next = e->newer;
                if (e->partition == partition) {
                        drop(c, e);
                        n++;
                }
        }
        return n;
}

static bool is_open(const struct mcd_state_cache *c, int32_t partition) {
        return partition >= 0 && (size_t)partition < c->n_open && c->open[partition];
}

void mcd_state_cache_open(struct mcd_state_cache *c, int32_t partition) {
        if (!c || partition < 0 || partition >= MAX_PARTITIONS)
                return;
        drop_partition(c, partition);
        if ((size_t)partition >= c->n_open) {
                size_t n = (size_t)partition + 64;
                uint8_t *v = realloc(c->open, n);
                if (!v)
                        return;
                memset(v + c->n_open, 0, n - c->n_open);
                c->open = v;
                c->n_open = n;
        }
        c->open[partition] = 1;
}

size_t mcd_state_cache_close(struct mcd_state_cache *c, int32_t partition) {
        if (!c)
                return 0;
        if (is_open(c, partition))
                c->open[partition] = 0;
        return drop_partition(c, partition);
}

const char *mcd_state_cache_get(struct mcd_state_cache *c, const char *customer_id, size_t *len) {
        struct entry *e;

        if (!c)
                return NULL;
        e = *find(c, customer_id, mcd_id_hash_n(customer_id, strlen(customer_id)));
        if (!e)
                return NULL;
        lru_unlink(c, e);
        lru_push(c, e);
        *len = e->len;
        return e->id + e->idlen + 1;
}

/* Doubles the table; kept as it is when memory is short (chains grow). */
static void grow(struct mcd_state_cache *c) {
        size_t n = c->n_buckets * 2;
        struct entry **b = calloc(n, sizeof(*b));

        if (!b)
                return;
        for (size_t i = 0; i < c->n_buckets; i++)
                for (struct entry *e = c->buckets[i], *next; e; e = next) {
                        next = e->hnext;
                        e->hnext = b[e->hash & (n - 1)];
                        b[e->hash & (n - 1)] = e;
                }
        free(c->buckets);
        c->buckets = b;
        c->n_buckets = n;
}

bool mcd_state_cache_put(struct mcd_state_cache *c, const char *customer_id, int32_t partition, const char *state,
                         size_t len) {
        size_t idlen = strlen(customer_id);
        uint64_t hash = mcd_id_hash_n(customer_id, idlen);
        struct entry *e, *old;

        if (!c)
                return false;
        if ((old = *find(c, customer_id, hash)))
                drop(c, old);
        if (idlen > UINT32_MAX || !is_open(c, partition) || !(e = malloc(sizeof(*e) + idlen + 1 + len)))
                return false;
        *e = (struct entry){.hash = hash, .len = len, .partition = partition, .idlen = (uint32_t)idlen};
        e->cost = malloc_usable_size(e);
        memcpy(e->id, customer_id, idlen + 1);
        memcpy(e->id + idlen + 1, state, len);
        if (c->n >= c->n_buckets)
                grow(c);
        if (c->n_buckets * sizeof(*c->buckets) + e->cost > c->max_bytes) {
                free(e);        /* larger than the whole cache */
                return false;
        }
        e->hnext = c->buckets[hash & (c->n_buckets - 1)];
        c->buckets[hash & (c->n_buckets - 1)] = e;
        lru_push(c, e);
        c->bytes += e->cost;
        c->n++;
        evict(c);
        return true;
}

size_t mcd_state_cache_bytes(const struct mcd_state_cache *c) {
        return c ? used(c) : 0;
}

size_t mcd_state_cache_entries(const struct mcd_state_cache *c) {
        return c ? c->n : 0;
}
