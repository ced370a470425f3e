/* apply.h -- a batch and the rules applied to it: its messages decoded (a
 * bad one becomes a dead letter) on the batch threads, timers and events
 * applied to its loaded customers, outcome and dead-letter frames encoded,
 * the customers' new state encoded for Redis and the changelog.  What is
 * collected into a batch, and when it is committed, is batch.h's. */
#ifndef MCD_APPLY_H
#define MCD_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/avro_codec.h"
#include "daemon/intake.h"
#include "daemon/pair.h"
#include "daemon/parallel.h"
#include "daemon/registry_gate.h"
#include "daemon/runtime.h"
#include "daemon/strmap.h"
#include "handlers/rules.h"

/* One message of a batch. */
struct item {
        struct inmsg *m;
        struct pair *pair;
        uint64_t incarnation;        /* the pair's when collected */
        int topic;
        bool good;
        size_t customer;             /* its customer's index in the batch's ids (when good; batch_add_id) */
        struct mcd_event ev;
        struct mcd_avro_error err;
};

/* A pair's stream time before a batch was applied, and which pair that was
 * (a pair restarted since is another incarnation, and starts over). */
struct pair_clock {
        int32_t partition;
        uint64_t incarnation;
        mcd_time_t stream_time;
};

struct batch {
        uint64_t epoch;              /* pairs->epoch when collected: the pairs it refers to */
        size_t n_pairs;              /* pairs->n then: the size of the arrays per pair */
        struct mcd_offsets *next;    /* per pair, the offsets after this batch's messages */
        size_t n_due;                /* the first n_due customers were found due (batch_due) */
        size_t n_due_wall;           /* of which the first n_due_wall in idle pairs, by the wall clock; the
                                      * others in busy pairs, by their pair's stream time */
        struct pair_clock *clock;    /* per pair, its stream time before the batch was applied */
        bool applied;                /* the rules ran on it (batch_apply was called) */
        struct item *items;
        size_t n_items, cap_items;   /* items used, and room (batch_take_items) */
        char **ids;                  /* customers to load */
        int32_t *id_partition;
        size_t n_ids, cap_ids;
        struct mcd_strmap index;     /* id (borrowed from ids) -> index + 1 */
        struct mcd_customer *customers;
        bool *had_due;               /* customer had a due time when loaded */
        bool *blank;                 /* customer had no state when loaded: not kept in the state cache */
        mcd_time_t *due_before;      /* which (when had_due) */
        char **state;                /* customers' encoded state, made once for Redis and the changelog */
        size_t *state_len;
        struct mcd_outcomes out;
        /* frames per pair, in order */
        void ***frames;
        size_t **frame_lens;
        size_t *n_frames;
        bool *touched;               /* per pair, the batch has messages, customers or frames of it (set by
                                      * batch_apply): it commits changelog records for it, offsets among them */
};

struct applier {
        struct mcd_env *env;
        struct pairs *pairs;
        struct intake *in;           /* the input topics' names */
        struct mcd_rules_config rules;
        struct mcd_avro *avro;
        struct mcd_par *par;         /* batch.threads: decode, parse and write the customers' state */
        struct mcd_avro **decoders;  /* one per batch thread; [0] is avro */
        struct mcd_avro_dir *schemas; /* schemas.dir's writer schemas, known to every codec */
        struct mcd_registry_gate *registry; /* schema_registry.url (registry_gate.h), or NULL */
};

/* Starts `threads` batch threads with a codec each (a codec is not shared
 * between threads); on success they replace ap's, which the caller stops
 * (batch_threads_stop, which frees a pool and its helpers' codecs). */
int batch_threads_start(struct applier *ap, int threads);
void batch_threads_stop(struct mcd_par *par, struct mcd_avro **decoders);

/* Reads schemas.dir `dir` and gives its writer schemas to every codec (the
 * batch threads' too), replacing the folder's previous ones.  A bad folder
 * changes nothing: a negative errno, logged (the file named). */
int apply_schemas_load(struct applier *ap, const char *dir);

/* Adds a customer to load (once), of the given input partition; its index
 * in b->ids goes to *index (NULL: not wanted).  0 or -ENOMEM. */
int batch_add_id(struct batch *b, const char *id, int32_t partition, size_t *index);
/* Frees a batch and what it holds; NULL is nothing. */
void batch_destroy(struct batch *b);
/* Takes b's items array out, emptied and zeroed as calloc gives it, for a
 * next batch (batch.c keeps a few: a fresh megabyte per batch costs page
 * faults); *cap is its room.  NULL when b has none.  This function can't
 * fail. */
struct item *batch_take_items(struct batch *b, size_t *cap);
/* No message and no customer? */
bool batch_empty(const struct batch *b);
/* For the debug log: how long ago b's oldest message was stamped by Kafka
 * (wall clock, against now) and buffered here (monotonic), in ms.  This
 * function can't fail. */
void batch_ages(const struct batch *b, int64_t now, int64_t *stamped, int64_t *held);
/* Decodes the batch's messages on the batch threads. */
void batch_decode(struct applier *ap, struct batch *b);
/* Once loaded: which customers had something due, for the due index. */
void batch_loaded(struct batch *b);
/* Applies timers (of the first n_due customers: due by `now` for the first
 * b->n_due_wall, by their pair's stream time for the others) and events to
 * the loaded customers, producing frames; the pairs' stream time before is
 * kept in b->clock, the pairs it touches in b->touched. */
int batch_apply(struct applier *ap, struct batch *b, int64_t now, size_t n_due);
/* The customers' new state, encoded on the batch threads. */
int batch_write_states(struct applier *ap, struct batch *b);

#endif
