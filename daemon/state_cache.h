/* state_cache.h -- the customers' states a READY pair's owner keeps in
 * process (Kafka Streams' record cache): their stored form as last
 * committed, bounded by bytes, least recently used out.
 *
 * DESIGN: a batch loads from Redis only the customers the cache does not
 * hold.  The cache is exact because a partition has one owner: it holds a
 * partition's customers only while its pair is READY (pair_set_phase opens
 * and closes the partition here; closing drops them), and a state enters
 * only after the commit that wrote it to Redis.  A commit refused, lost or
 * found stale restarts or fences its pairs, so whatever Redis may hold
 * instead (another owner's, an older copy after a failover) is read again.
 * Owned by the worker thread; no locking.  Every function accepts a NULL
 * cache (cache.max_bytes = 0): it then holds nothing. */
#ifndef MCD_STATE_CACHE_H
#define MCD_STATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mcd_state_cache;

/* A cache of at most max_bytes (entries' bookkeeping and the allocator's
 * rounding included, the hash table's buckets too); *out is
 * NULL when max_bytes is 0.  0 or -ENOMEM. */
int mcd_state_cache_new(size_t max_bytes, struct mcd_state_cache **out);
void mcd_state_cache_free(struct mcd_state_cache *c);
/* A new bound, entries evicted down to it (SIGHUP).  This function can't
 * fail. */
void mcd_state_cache_set_max(struct mcd_state_cache *c, size_t max_bytes);

/* The partition's pair became READY: states of it are taken from now on.
 * What was held for it before is dropped.  This function can't fail (a
 * partition it has no room to mark stays closed: nothing of it is kept). */
void mcd_state_cache_open(struct mcd_state_cache *c, int32_t partition);
/* The partition's pair left READY or was given up: its states are dropped
 * and no more are taken.  Returns how many were dropped. */
size_t mcd_state_cache_close(struct mcd_state_cache *c, int32_t partition);

/* The committed state of a customer, *len its length, or NULL when not held;
 * it becomes the most recently used.  Valid until the next put, close or
 * set_max. */
const char *mcd_state_cache_get(struct mcd_state_cache *c, const char *customer_id, size_t *len);
/* Keeps a copy of a customer's state as just committed.  False when the
 * partition is closed, the entry larger than the whole cache, or memory
 * short; a state held before for the customer is dropped then. */
bool mcd_state_cache_put(struct mcd_state_cache *c, const char *customer_id, int32_t partition, const char *state,
                         size_t len);

/* Bytes and entries held. */
size_t mcd_state_cache_bytes(const struct mcd_state_cache *c);
size_t mcd_state_cache_entries(const struct mcd_state_cache *c);

#endif
