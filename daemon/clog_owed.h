/* clog_owed.h -- a batch's changelog records: queued in the publisher until
 * its frames are delivered; owed, in Redis, until they are: the keys a
 * commit pushes (struct clog_keys), and the acknowledgement that tells the
 * owner when to trim them (struct clog_ack). */
#ifndef MCD_CLOG_OWED_H
#define MCD_CLOG_OWED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/pair.h"

/* One commit's owed keys of one partition: NUL-terminated keys back to back
 * (the partition's offsets record, then the customers' ids), one element of
 * P clog_owed:<partition>. */
struct clog_keys {
        char *v;                     /* NULL: nothing owed */
        size_t len, cap;
};

/* Appends key (with its NUL), after `escape` (NULL for none).  0 or
 * -ENOMEM. */
int clog_keys_add(struct clog_keys *k, const char *escape, const char *key);
/* Frees an array of n (accepts NULL).  This function can't fail. */
void clog_keys_free(struct clog_keys *k, size_t n);
struct batch;
struct publisher;
/* Queues batch b's changelog records (committed as batch `seq`) in the
 * publisher, to be appended once its frames are delivered: the customers'
 * states and the touched pairs' offsets records.  Out of memory, some not
 * queued, every ready pair starts again (its claim appends what its owed
 * list names) and -ENOMEM is returned. */
int clog_queue_batch(struct publisher *pub, struct pairs *ps, const struct batch *b, const char *marks,
                     uint64_t seq);
/* The keys of the changelog records batch b commits, per ready pair of ps
 * it touches (b->touched), in ck[] (one per pair, empty): the customers'
 * ids and the pair's offsets record.  0 or -ENOMEM. */
int clog_owed_keys(const struct pairs *ps, const struct batch *b, struct clog_keys *ck);
/* Calls fn on each key of an element as Redis returns it (len bytes; a
 * trailing key without its NUL counts too).  Stops at fn's first error and
 * returns it, else 0. */
int clog_keys_each(const char *v, size_t len, int (*fn)(void *ctx, const char *key, size_t key_len), void *ctx);

/* A batch's records of one partition, handed to the producer: each
 * record's opaque, and its delivery report counts `outstanding` down.  Once
 * done, a batch committed under the claim the pair holds now (from its
 * clog_from on) lets the next commit trim its element of the owed list;
 * batch 0 stands for records appended outside a commit (a claim's repair). */
struct clog_ack_part {
        int32_t partition;
        unsigned outstanding;        /* records not yet reported on (dr_msg_cb, on the producer's poll), and
                                      * an offsets record held back (clog_release) */
        unsigned customers;          /* of which customers' records: the partition's offsets records wait */
};

/* The parts of one batch's released records. */
struct clog_ack {
        struct clog_ack *next;       /* the next batch released (the list, in release order) */
        uint64_t batch;
        size_t n, cap;               /* parts used; room, fixed at creation (their addresses are opaques) */
        struct clog_ack_part part[];
};

/* The acks of the records released and not yet all reported on, oldest
 * first. */
struct clog_acks {
        struct clog_ack *head, *tail;
};

/* The part of (batch, partition): in the tail ack if it is the batch's,
 * else in a new one with room for `room` partitions.  NULL when out of
 * memory or room. */
struct clog_ack_part *clog_ack_part(struct clog_acks *l, uint64_t batch, int32_t partition, size_t room);
/* Takes the done acks off the head, up to the first not done (the owed
 * list is trimmed from its head, in order): each part whose pair is ready
 * and committed its batch under the claim it holds now adds one to the
 * pair's clog_untrimmed, unless an append of the pair failed (clog_failed:
 * its claim appends the keys again).  This
 * function can't fail. */
void clog_acks_done(struct clog_acks *l, struct pairs *ps);
/* Anything not yet taken off? */
bool clog_acks_any(const struct clog_acks *l);
/* Frees them all; only once the producer is gone (their parts are its
 * messages' opaques).  This function can't fail. */
void clog_acks_free(struct clog_acks *l);

/* Appends the queued records of every batch older than `upto` (its frames
 * delivered), but those held, those of a partition stalled past the
 * session timeout (dropped, the pair restarted) or whose append failed
 * (dropped: its claim appends its owed keys), and each partition's offsets
 * record until its customers' records of that batch and before are
 * reported on (a later call appends it).  This function can't fail. */
void clog_release(struct publisher *pub, uint64_t upto);
/* Frees every queued record.  This function can't fail. */
void clog_queue_clear(struct publisher *pub);

#endif
