/* store.h -- the daemon's state in Redis (hiredis), and its commit point.
 *
 * Keys, all under the configured prefix P (default "mcd:"):
 *   P meta                 hash; exists while Redis holds the daemon's state.  Its
 *                          absence after start-up means Redis lost its data.
 *   P c:<customer_id>      string; the customer's state, binary (state_codec.h;
 *                          JSON written by earlier versions is read too)
 *   P off:<partition>      hash {rel, sub}: next input offsets to consume;
 *                          {marks}: where reconciliation starts reading the
 *                          output topics (opaque to the store); {seq}: the
 *                          partition's commit counter, one more each commit:
 *                          an owner that finds it behind what it committed
 *                          knows Redis came back older (a rollback)
 *   P due:<partition>      zset; member customer_id, score = its next due time (ms)
 *   P outbox:<partition>   list of outbox frames (outbox.h; zipped, frame_zip.h), oldest first
 *   P gen:<partition>      string; owner generation of the partition (fencing)
 *   P redo:<partition>     hash {marks, rel, sub, due}: the partition was rebuilt
 *                          from the changelog or rolled back, and is re-processed
 *                          up to input offsets rel/sub and until nothing is due
 *                          at or before due (ms); outputs already published may
 *                          lie on the output topics from marks on (restore.c,
 *                          redo_check)
 *
 * One batch = one MULTI / EXEC (mcd_store_commit) behind a WATCH of the keys
 * it checks (store_fence.c): meta exists, every partition's generation is
 * still ours and its commit counter the batch's; then it writes the
 * customers, due times, offsets, and appends the outbox.  Nothing is written
 * when a check fails.  Loading is one pipelined round trip.
 *
 * Every function returns 0 or a negative errno: -ECONNREFUSED / -EIO /
 * -ETIMEDOUT when Redis is unreachable (the connection is dropped and
 * re-established by the next call), -ESTALE when fenced, -ENODATA when Redis
 * lost its state (meta missing), -ENOMEM.
 *
 * With Sentinels (redis.sentinels), every connection starts by asking them
 * where the master is (sentinel.h) and checks with ROLE that the node it
 * reaches is a master; a node that is not, or a write refused as READONLY (a
 * demoted master) or NOREPLICAS (a master cut off from its replicas), is a
 * connection problem like the others: -EIO, the connection dropped, and the
 * Sentinels asked again by the next call.  -EHOSTUNREACH when no Sentinel
 * named a master. */
#ifndef MCD_STORE_H
#define MCD_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handlers/model.h"

struct mcd_store;

struct mcd_store_options {
        const char *host;            /* the node, unless sentinels is set */
        int port;
        int db;
        const char *password;        /* NULL: no AUTH */
        const char *prefix;          /* e.g. "mcd:" */
        int timeout_ms;              /* connect and command timeout, also each Sentinel's */
        const char *sentinels;       /* "host:port,...": the master is found through them; NULL or "": host, port */
        const char *master_name;     /* the master's name for the Sentinels; NULL: "mymaster" */
        bool zip_frames;             /* outbox frames written zipped (frame_zip.h); read either way */
        /* Called, if set, with what the store has to say about where Redis
         * is (a syslog priority, one line): the master the Sentinels name,
         * a Sentinel that did not answer, a node that is not a master, a
         * write refused as READONLY or NOREPLICAS. */
        void (*note)(void *ctx, int priority, const char *text);
        void *note_ctx;
};

/* Input offsets of one co-partitioned pair. -1 means "none stored". */
struct mcd_offsets {
        int64_t rel;
        int64_t sub;
};

/* A customer to write in a batch, with the input partition it belongs to
 * (its due time goes to that partition's zset).  When the caller knows the
 * due time the customer was loaded with (due_known), the zset is written
 * only if the due time changed: it holds the stored state's due time, since
 * every commit writes both.  Otherwise (false, as zeroed) it is written. */
struct mcd_store_customer {
        const struct mcd_customer *customer;
        int32_t partition;
        const char *state;           /* its encoded state if the caller has it, else NULL */
        size_t state_len;            /* of state */
        bool due_known;              /* had_due and due_before are what it was loaded with */
        bool had_due;                /* it had a due time when loaded */
        mcd_time_t due_before;       /* that due time (when had_due) */
};

struct mcd_store_partition {
        int32_t partition;
        int64_t generation;          /* must equal P gen:<partition> */
        int64_t seq;                 /* must equal its commit counter; 0: not checked */
        bool set_offsets;
        struct mcd_offsets offsets;  /* next offsets to consume */
        const void *const *frames;   /* outbox frames to append */
        const size_t *frame_lens;
        size_t n_frames;
        size_t trim;                 /* drop this many frames from the outbox head first */
        const char *marks;           /* output-topic marks to store (publish.c marks_format), NULL: leave */
        const char *clog_keys;       /* the keys of its changelog records, pushed to its owed list (clog_owed.h) */
        size_t clog_keys_len;        /* 0: none */
        size_t clog_trim;            /* drop this many elements from that list's head first */
        char *const *clog_forget;    /* keys to remove from P clog_lost:<partition> */
        size_t n_clog_forget;
};

struct mcd_store_batch {
        const struct mcd_store_customer *customers;
        size_t n_customers;
        const struct mcd_store_partition *partitions;
        size_t n_partitions;
        /* mcd_store_load_and_commit calls this, if set, once the load's
         * reply is read, with its result, while Redis runs the commit.  Not
         * called when they could not be sent. */
        void (*while_running)(void *ctx, int load_r);
        void *while_running_ctx;
};

/* Creates a store handle; does not connect yet (the first call does), so a
 * daemon can start while Redis is down.  -EINVAL for bad options (a
 * sentinels list that does not parse). */
int mcd_store_new(const struct mcd_store_options *o, struct mcd_store **out);

/* Where the store connects, for log lines: "host:port", with Sentinels
 * "host:port (master NAME)" once they named one, "master NAME (through the
 * Sentinels)" before.  Valid until the next call on s. */
const char *mcd_store_where(const struct mcd_store *s);
void mcd_store_free(struct mcd_store *s);

struct mcd_par;

/* Loaded customers are parsed on par's threads (borrowed; NULL: on the
 * caller's). */
void mcd_store_set_parallel(struct mcd_store *s, struct mcd_par *par);

/* Follows a failover the Sentinels announce: with redis.sentinels set,
 * keeps a subscription to +switch-master on one of them (opened here, again
 * after a loss, at most every 1 to 30 s, one Sentinel per attempt) and
 * reads it without blocking.  When master_name moved to another address,
 * the connection is dropped (the next call asks the Sentinels where the
 * master is) and 1 is returned; else 0.  Never fails: a Sentinel that
 * cannot be subscribed to is noted, and the next error still leads to the
 * new master.  Without Sentinels: 0, nothing done. */
int mcd_store_follow_master(struct mcd_store *s);

/* Round trip; 0 when Redis answers. *rtt_us gets the round-trip time. */
int mcd_store_ping(struct mcd_store *s, int64_t *rtt_us);

/* Creates P meta if absent (first start).  *created tells whether it was
 * absent: on a store that had offsets before, that means Redis lost its data. */
int mcd_store_init_meta(struct mcd_store *s, bool *created);
/* Whether Redis may evict the daemon's keys: a maxmemory and an allkeys-*
 * policy drop any key once memory runs out, a customer's state too, and
 * nothing tells (the meta key may stay).  (The daemon sets no expiry, so
 * volatile-* policies never pick its keys.)  1, with the policy in
 * `policy`, if it may; 0 if not; -EOPNOTSUPP when CONFIG GET is refused (a
 * managed Redis renames it); another negative errno when Redis fails. */
int mcd_store_evicts(struct mcd_store *s, char *policy, size_t size);
/* Does P meta exist? 0 with *exists set. */
int mcd_store_meta_exists(struct mcd_store *s, bool *exists);

/* Takes ownership of a partition: INCR P gen:<partition>, and never to a
 * generation at or below floor (one this instance, or the group, knows was
 * handed out before, whatever a rolled-back Redis says now).  `ours`, when
 * above 0, is the generation the caller claimed it under before: if Redis
 * names a later one, another instance claimed it since (generations only
 * grow by claims; an older Redis names an earlier one), and -ESTALE is
 * returned with that generation in *generation, nothing written. */
int mcd_store_claim(struct mcd_store *s, int32_t partition, int64_t floor, int64_t ours, int64_t *generation);
int mcd_store_generation(struct mcd_store *s, int32_t partition, int64_t *generation);
/* The generations of several partitions in one round trip (0: never claimed). */
int mcd_store_generations(struct mcd_store *s, const int32_t *partitions, size_t n, int64_t *generations);

/* Loads customers by id in one round trip (MGET).  out[i] is initialised by
 * the callee: the stored state, or a fresh customer when none is stored.
 * On error nothing in out needs clearing. */
int mcd_store_load(struct mcd_store *s, const char *const *ids, size_t n, struct mcd_customer *out);

/* Sets a partition's commit counter forward to seq (never back): after a
 * rollback, the counter goes on from what its owners had counted. */
int mcd_store_raise_seq(struct mcd_store *s, int32_t partition, int64_t seq);

/* A commit refused because a partition's commit counter in Redis is not
 * the owner's: Redis came back older than what was committed. */
#define MCD_STORE_ROLLBACK (-EUCLEAN)

/* A command refused because a key of the daemon's is of another type
 * (someone wrote a string where an outbox list is): logged, naming the key
 * when the commit's fence found it (store_fence.c).  The commit so refused
 * wrote nothing; a claim may have, its generation included, and is made
 * again. */
#define MCD_STORE_WRONG_TYPE (-EMEDIUMTYPE)

/* A store error in words for a log line: the two codes above as what they
 * mean here, any other as strerror.  This function can't fail. */
const char *mcd_store_strerror(int r);

/* The atomic batch write described above. */
int mcd_store_commit(struct mcd_store *s, const struct mcd_store_batch *b);

/* The load of the next batch's customers (as mcd_store_load) and the
 * commit of this one in one round trip, the load first: it must not name a
 * customer the commit writes (it would read the state before the commit).
 * Once both are sent and the load's reply is read, while_running is called
 * with *load_r set (0 or the load's error), while Redis runs the commit.
 * Returns the commit's result, as mcd_store_commit; *load_r is
 * -ECANCELED when nothing was sent: it could not be, or the commit's checks
 * failed first (on a fence read in a round trip of its own). */
int mcd_store_load_and_commit(struct mcd_store *s, const struct mcd_store_batch *b, const char *const *ids,
                              size_t n, struct mcd_customer *out, int *load_r);

/* Offsets of a partition, both -1 when none are stored; *seq its commit
 * counter (0 when none; seq may be NULL). */
int mcd_store_get_offsets(struct mcd_store *s, int32_t partition, struct mcd_offsets *o, int64_t *seq);
/* Does Redis hold the partition's offsets (its P off:<partition>)?  A
 * partition without them never committed here: it is new, or Redis lost it. */
int mcd_store_offsets_stored(struct mcd_store *s, int32_t partition, bool *stored);

/* A rebuilt partition's re-processing (P redo:<partition>): set before
 * the restored offsets are written; read back at each start (*found false
 * when there is none, else *marks a heap string, maybe empty; *until is
 * undefined unless found; *due 0 for an earlier version's record without
 * one); cleared once the offsets have reached `until`, nothing is due at or
 * before `due`, and the partition's frames are delivered.  Set, raised and
 * cleared only under the generation the caller claimed the partition
 * under, so that an owner stalled past another's claim touches nothing of
 * the new owner's: -ESTALE when Redis names another, -ENODATA when none. */
int mcd_store_set_redo(struct mcd_store *s, int32_t partition, int64_t generation, const char *marks,
                       struct mcd_offsets until, mcd_time_t due);
int mcd_store_get_redo(struct mcd_store *s, int32_t partition, bool *found, char **marks,
                       struct mcd_offsets *until, mcd_time_t *due);
int mcd_store_clear_redo(struct mcd_store *s, int32_t partition, int64_t generation);
/* The record's due raised to due, if the record is there with these marks
 * and an earlier due; nothing otherwise. */
int mcd_store_raise_redo_due(struct mcd_store *s, int32_t partition, int64_t generation, const char *marks,
                             mcd_time_t due);

/* The changelog records of a partition whose append failed, by their key
 * (a customer's id, or the partition's offsets key): added by whichever
 * instance saw the append fail, read and appended again by whichever claims
 * the partition next, then forgotten by its first commit (struct
 * mcd_store_partition's clog_forget).  For _get, the caller frees keys
 * with mcd_store_ids_free. */
int mcd_store_clog_lost_add(struct mcd_store *s, int32_t partition, char *const *keys, size_t n);
int mcd_store_clog_lost_get(struct mcd_store *s, int32_t partition, char ***keys, size_t *n);
/* The changelog records a partition's commits owe until delivered, by
 * their key (clog_owed.h): pushed by each commit, trimmed by its owner's
 * later commits (struct mcd_store_partition's clog_trim), read by the
 * partition's next claim: the keys of its `elements` elements (duplicates
 * kept; the caller frees keys with mcd_store_ids_free). */
int mcd_store_clog_owed_get(struct mcd_store *s, int32_t partition, char ***keys, size_t *n, size_t *elements);

/* The marks stored for a partition (heap string), *marks NULL when none. */
int mcd_store_get_marks(struct mcd_store *s, int32_t partition, char **marks);

/* The whole outbox of a partition, oldest first, zipped frames unzipped
 * (frame_zip.h; one that cannot be is named in a note and given as it is).
 * The caller frees each frames[i] and the arrays with mcd_store_frames_free. */
int mcd_store_read_outbox(struct mcd_store *s, int32_t partition, void ***frames, size_t **lens, size_t *n);
void mcd_store_frames_free(void **frames, size_t *lens, size_t n);

/* How deep mcd_store_due looks into each partition's due index. */
#define MCD_STORE_DUE_DEPTH 1000

/* Customers due at or before until[i] in partitions[i], in one round trip:
 * at most max in all, shared out evenly among the partitions that have
 * them, and at most MCD_STORE_DUE_DEPTH of one partition; each partition's
 * earliest due first.  ids[i] is in partition id_partitions[i], the
 * partitions' in the order given.  *more (when not NULL) tells whether any
 * partition may have more due than were taken.  The caller frees ids with
 * mcd_store_ids_free and id_partitions with free. */
int mcd_store_due(struct mcd_store *s, const int32_t *partitions, const mcd_time_t *until, size_t n_parts, size_t max,
                  char ***ids, int32_t **id_partitions, size_t *n, bool *more);
void mcd_store_ids_free(char **ids, size_t n);

/* Counts for metrics and STATUS, summed over the given partitions in one
 * round trip: customers with something due, outbox length. */
int mcd_store_counts(struct mcd_store *s, const int32_t *partitions, size_t n_parts, int64_t *due,
                     int64_t *outbox);

/* A customer's stored state as it is stored (for `multichanneld state`):
 * *buf is a heap copy of *len bytes, NULL when the customer is unknown. */
int mcd_store_get_customer_raw(struct mcd_store *s, const char *customer_id, char **buf, size_t *len);
/* The same for n customers, an MGET per 512: bufs[i] and lens[i] as above.
 * On error none is kept (every bufs[i] NULL). */
int mcd_store_get_customers_raw(struct mcd_store *s, const char *const *ids, size_t n, char **bufs,
                                size_t *lens);

/* Connections made to Redis so far: a change means whatever the last one
 * said may no longer hold (a restart, a failover). */
uint64_t mcd_store_connections(const struct mcd_store *s);

/* Number of Redis round trips made so far (a pipeline counts once). */
uint64_t mcd_store_round_trips(const struct mcd_store *s);

#endif
