/* apply.c -- the rules applied to a batch: decoding, timers and events,
 * frames, the customers' encoded state, and the batch threads that share
 * the work (apply.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/apply.h"
#include "daemon/log.h"
#include "daemon/outbox.h"
#include "daemon/registry_gate.h"
#include "daemon/state_codec.h"
#include "daemon/store.h"

/* Room for one more id.  0 or -ENOMEM. */
static int ids_reserve(struct batch *b) {
        size_t cap = b->cap_ids ? b->cap_ids * 2 : 128;
        char **v;
        int32_t *pv;

        if (b->n_ids < b->cap_ids)
                return 0;
        if (!(v = realloc(b->ids, cap * sizeof(*v))))
                return -ENOMEM;
        b->ids = v;
        if (!(pv = realloc(b->id_partition, cap * sizeof(*pv))))
                return -ENOMEM;
        b->id_partition = pv;
        b->cap_ids = cap;
        return 0;
}

int batch_add_id(struct batch *b, const char *id, int32_t partition, size_t *index) {
        uintptr_t known = (uintptr_t)mcd_strmap_get(&b->index, id);
        size_t i = b->n_ids;
        int r;

        if (known) {
                if (index)
                        *index = known - 1;
                return 0;
        }
        if ((r = ids_reserve(b)) < 0)
                return r;
        if (!(b->ids[i] = strdup(id)))
                return -ENOMEM;
        b->id_partition[i] = partition;
        if ((r = mcd_strmap_put_borrowed(&b->index, b->ids[i], (void *)(uintptr_t)(i + 1))) < 0) {
                free(b->ids[i]);
                return r;
        }
        b->n_ids++;
        if (index)
                *index = i;
        return 0;
}

/* The items' events and messages freed; with `zero`, the used ones zeroed
 * again. */
static void items_clear(struct batch *b, bool zero) {
        for (size_t i = 0; i < b->n_items; i++) {
                if (b->items[i].good)
                        mcd_event_clear(&b->items[i].ev);
                free(b->items[i].m);
        }
        if (zero && b->items)
                memset(b->items, 0, b->n_items * sizeof(*b->items));
        b->n_items = 0;
}

struct item *batch_take_items(struct batch *b, size_t *cap) {
        struct item *items = b->items;

        items_clear(b, true);
        *cap = b->cap_items;
        b->items = NULL;
        b->cap_items = 0;
        return items;
}

static void batch_free(struct batch *b) {
        size_t n_pairs = b->n_pairs;

        items_clear(b, false);
        free(b->next);
        free(b->clock);
        free(b->items);
        if (b->customers)
                for (size_t i = 0; i < b->n_ids; i++)
                        mcd_customer_clear(&b->customers[i]);
        free(b->customers);
        if (b->state)
                for (size_t i = 0; i < b->n_ids; i++)
                        free(b->state[i]);
        free(b->state);
        free(b->state_len);
        free(b->had_due);
        free(b->blank);
        free(b->due_before);
        for (size_t i = 0; i < b->n_ids; i++)
                free(b->ids[i]);
        free(b->ids);
        free(b->id_partition);
        mcd_strmap_clear(&b->index);
        mcd_outcomes_clear(&b->out);
        if (b->frames)
                for (size_t i = 0; i < n_pairs; i++) {
                        for (size_t j = 0; j < b->n_frames[i]; j++)
                                free(b->frames[i][j]);
                        free(b->frames[i]);
                        free(b->frame_lens[i]);
                }
        free(b->frames);
        free(b->frame_lens);
        free(b->n_frames);
        free(b->touched);
}

/* Makes room for one more frame of pair pi.  The room is implied by the
 * count, which add_frame alone raises: 8, then doubled each time the count
 * reaches a power of two (a realloc per frame was two allocations per
 * outcome).  0 or -ENOMEM. */
static int frames_reserve(struct batch *b, size_t pi) {
        size_t n = b->n_frames[pi], cap;
        void **v;
        size_t *lv;

        if (n != 0 && (n < 8 || (n & (n - 1)) != 0))
                return 0;
        cap = n ? 2 * n : 8;
        v = realloc(b->frames[pi], cap * sizeof(*v));
        if (!v)
                return -ENOMEM;
        b->frames[pi] = v;
        lv = realloc(b->frame_lens[pi], cap * sizeof(*lv));
        if (!lv)
                return -ENOMEM;
        b->frame_lens[pi] = lv;
        return 0;
}

static int add_frame(struct batch *b, size_t pi, const struct mcd_frame *f) {
        void *buf;
        size_t len;
        int r = mcd_frame_encode(f, &buf, &len);

        if (r >= 0 && (r = frames_reserve(b, pi)) < 0)
                free(buf);
        if (r < 0)
                return r;
        b->frames[pi][b->n_frames[pi]] = buf;
        b->frame_lens[pi][b->n_frames[pi]++] = len;
        return 0;
}

/* The frames of the outcomes from `from` on, made by pair pi's rules at
 * clock. */
static int outcome_frames(struct applier *ap, struct batch *b, size_t pi, size_t from, int64_t clock) {
        char at[24], part[16];
        int n_at, n_part;

        if (from == b->out.n)
                return 0;
        n_at = snprintf(at, sizeof(at), "%" PRId64, clock);
        n_part = snprintf(part, sizeof(part), "%" PRId32, ap->pairs->v[pi]->partition);
        for (size_t i = from; i < b->out.n; i++) {
                const struct mcd_outcome *o = &b->out.v[i];
                struct mcd_frame f = {.kind = MCD_FRAME_OUTCOME, .n_headers = 2};
                const void *val;
                size_t len;
                int r = mcd_avro_outcome_bytes(ap->avro, o, &val, &len);
                if (r < 0)
                        return r;
                f.id = o->event_id;
                f.id_len = strlen(o->event_id);
                f.key = o->customer_id;
                f.key_len = strlen(o->customer_id);
                f.value = val;
                f.value_len = len;
                f.headers[0] = (struct mcd_frame_header){MCD_CLOCK_HEADER, at, (size_t)n_at};
                f.headers[1] = (struct mcd_frame_header){MCD_PARTITION_HEADER, part, (size_t)n_part};
                if ((r = add_frame(b, pi, &f)) < 0)
                        return r;
                ap->env->st.outcomes[o->type]++;
                if (o->type == MCD_OUT_TRANSITION_REJECTED || o->type == MCD_OUT_RESALE_REJECTED) {
                        int k = mcd_stats_rejection_index(o->reason);
                        if (k >= 0)
                                ap->env->st.rejections[k]++;
                }
        }
        return 0;
}

static int dead_letter_frame(struct applier *ap, struct batch *b, size_t pi, const struct item *it) {
        char id[512], part[16], off[24];
        const char *topic = topic_of(ap->in, it->topic);
        struct mcd_frame f = {.kind = MCD_FRAME_DEAD_LETTER, .timestamp = it->m->timestamp > 0 ? it->m->timestamp : 0};

        snprintf(id, sizeof(id), "dlq:%s:%" PRId32 ":%" PRId64, topic, it->m->partition, it->m->offset);
        snprintf(part, sizeof(part), "%" PRId32, it->m->partition);
        snprintf(off, sizeof(off), "%" PRId64, it->m->offset);
        f.id = id;
        f.id_len = strlen(id);
        f.key = it->m->key;
        f.key_len = it->m->key_len;
        f.value = it->m->payload;
        f.value_len = it->m->len;
        f.headers[0] = (struct mcd_frame_header){"error", it->err.code, strlen(it->err.code)};
        f.headers[1] = (struct mcd_frame_header){"error_message", it->err.message, strlen(it->err.message)};
        f.headers[2] = (struct mcd_frame_header){"source_topic", topic, strlen(topic)};
        f.headers[3] = (struct mcd_frame_header){"source_partition", part, strlen(part)};
        f.headers[4] = (struct mcd_frame_header){"source_offset", off, strlen(off)};
        f.n_headers = 5;
        {
                int k = mcd_stats_dead_letter_index(it->err.code);
                if (k >= 0)
                        ap->env->st.dead_letters[k]++;
        }
        mcd_log_full(LOG_WARNING,
                     &(struct mcd_log_fields){.topic = topic, .partition = it->m->partition,
                                              .offset = it->m->offset, .error_code = it->err.code},
                     "dead letter: %s", it->err.message);
        return add_frame(b, pi, &f);
}

/* Decodes a message; a bad one becomes a dead letter. */
static void decode_item(struct mcd_avro *avro, struct item *it) {
        enum mcd_avro_kind kind = it->topic == REL ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;

        it->good = mcd_avro_decode_event(avro, kind, it->m->payload, it->m->len, &it->ev, &it->err) == 0;
        if (it->good && (it->m->key_len != strlen(it->ev.customer_id) ||
                         memcmp(it->m->key, it->ev.customer_id, it->m->key_len) != 0)) {
                it->err.code = MCD_DLQ_KEY_MISMATCH;
                snprintf(it->err.message, sizeof(it->err.message),
                         "The message key differs from the event's customer_id \"%s\"; producers must key "
                         "each event by its customer_id.",
                         it->ev.customer_id);
                mcd_event_clear(&it->ev);
                it->good = false;
        }
}

struct decode_job {
        struct applier *ap;
        struct batch *b;
};

/* Decodes one item of a batch with the codec of the thread it runs on. */
static void decode_one(void *ctx, size_t i, unsigned thread) {
        struct decode_job *j = ctx;

        decode_item(j->ap->decoders[thread], &j->b->items[i]);
}

void batch_decode(struct applier *ap, struct batch *b) {
        mcd_par_for(ap->par, b->n_items, decode_one, &(struct decode_job){.ap = ap, .b = b});
}

/* Applies timers and events to the loaded customers, producing frames. */
int batch_apply(struct applier *ap, struct batch *b, int64_t now, size_t n_due) {
        int r;

        b->applied = true;
        for (size_t i = 0; i < b->n_pairs; i++) {
                const struct pair *p = ap->pairs->v[i];
                b->clock[i] = (struct pair_clock){p->partition, p->incarnation, p->stream_time};
                b->touched[i] = false;
        }

        /* Timers and park deadlines first: they were due before now (an
         * idle pair's, by the wall clock) or before the pair's stream time
         * (a busy pair's: before any of the batch's events). */
        for (size_t i = 0; i < n_due; i++) {
                struct pair *p = pair_find(ap->pairs, b->id_partition[i]);
                size_t pi = pair_index(ap->pairs, p), from = b->out.n;
                int64_t clock = i < b->n_due_wall ? now : p->stream_time;
                b->touched[pi] = true;
                while ((r = mcd_fire_next_due(&b->customers[i], clock, &ap->rules, &b->out)) > 0)
                        ap->env->st.timers_fired++;
                if (r < 0 || (r = outcome_frames(ap, b, pi, from, clock)) < 0)
                        return r;
        }
        for (size_t i = 0; i < b->n_items; i++) {
                struct item *it = &b->items[i];
                size_t pi = pair_index(ap->pairs, it->pair), from = b->out.n, ci;
                struct mcd_customer *c;

                b->touched[pi] = true;
                if (!it->good) {
                        if ((r = dead_letter_frame(ap, b, pi, it)) < 0)
                                return r;
                        continue;
                }
                ci = it->customer;
                c = &b->customers[ci];
                /* The rules' clock for input is stream time, as in replay:
                 * what fell due before this event fires first. */
                if (it->ev.occurred_at > it->pair->stream_time)
                        it->pair->stream_time = it->ev.occurred_at;
                while ((r = mcd_fire_next_due(c, it->pair->stream_time, &ap->rules, &b->out)) > 0)
                        ap->env->st.timers_fired++;
                if (r < 0)
                        return r;
                r = mcd_apply_event(c, &it->ev, it->pair->stream_time, &ap->rules, &b->out);
                if (r < 0 || (r = outcome_frames(ap, b, pi, from, it->pair->stream_time)) < 0)
                        return r;
                ap->env->st.events[it->topic][it->ev.type]++;
        }
        return 0;
}

void batch_ages(const struct batch *b, int64_t now, int64_t *stamped, int64_t *held) {
        int64_t ts = now, arrived = mono_ms(), mono = arrived;

        for (size_t i = 0; i < b->n_items; i++) {
                if (b->items[i].m->timestamp < ts)
                        ts = b->items[i].m->timestamp;
                if (b->items[i].m->arrived < arrived)
                        arrived = b->items[i].m->arrived;
        }
        *stamped = now - ts;
        *held = mono - arrived;
}

bool batch_empty(const struct batch *b) {
        return b->n_items == 0 && b->n_ids == 0;
}

/* A customer no event has reached yet (or whose every trace has gone). */
static bool blank(const struct mcd_customer *c) {
        return !c->has_cloud && c->state == MCD_CS_NONE && c->n_subs == 0 && c->n_parked == 0 &&
               mcd_seen_count(&c->seen) == 0 && !c->seen.has_forgot;
}

/* Once loaded: which customers had something due, and when, for the due
 * index (written only where that changes); which had no state. */
void batch_loaded(struct batch *b) {
        for (size_t i = 0; i < b->n_ids; i++) {
                b->had_due[i] = mcd_next_due(&b->customers[i], &b->due_before[i], NULL);
                b->blank[i] = blank(&b->customers[i]);
        }
}

void batch_destroy(struct batch *b) {
        if (b) {
                batch_free(b);
                free(b);
        }
}

static void write_state(void *ctx, size_t i, unsigned thread) {
        struct batch *b = ctx;

        (void)thread;
        (void)mcd_state_encode(&b->customers[i], &b->state[i], &b->state_len[i]);    /* NULL on failure */
}

/* The customers' new state, encoded on the batch threads. */
int batch_write_states(struct applier *ap, struct batch *b) {
        mcd_par_for(ap->par, b->n_ids, write_state, b);
        for (size_t i = 0; i < b->n_ids; i++)
                if (!b->state[i])
                        return -ENOMEM;
        return 0;
}


static void decoders_free(struct mcd_avro **decoders, unsigned n) {
        for (unsigned i = 1; decoders && i < n; i++)
                mcd_avro_free(decoders[i]);
        free(decoders);
}

/* Frees a pool and the codecs of its helpers. */
void batch_threads_stop(struct mcd_par *par, struct mcd_avro **decoders) {
        unsigned n = mcd_par_threads(par);

        mcd_par_free(par);
        decoders_free(decoders, n);
}

/* Starts `threads` batch threads with a codec each (a codec is not shared
 * between threads); on success they replace ap's, which the caller stops. */
int batch_threads_start(struct applier *ap, int threads) {
        struct mcd_avro **decoders = calloc((size_t)threads, sizeof(*decoders));
        struct mcd_par *par = NULL;
        int r = decoders ? 0 : -ENOMEM;

        if (r == 0)
                decoders[0] = ap->avro;
        for (int i = 1; r == 0 && i < threads; i++)
                if ((r = mcd_avro_new(&decoders[i])) == 0) {
                        r = mcd_avro_use_dir(decoders[i], ap->schemas);
                        mcd_registry_gate_attach(ap->registry, decoders[i], false);
                }
        if (r == 0)
                r = mcd_par_new((unsigned)threads, &par);
        if (r < 0) {
                decoders_free(decoders, (unsigned)threads);
                return r;
        }
        ap->par = par;
        ap->decoders = decoders;
        mcd_store_set_parallel(ap->env->store, par);
        return 0;
}


int apply_schemas_load(struct applier *ap, const char *dir) {
        unsigned n = ap->decoders ? mcd_par_threads(ap->par) : 1;
        struct mcd_avro_dir *d = NULL;
        char why[768];
        int r;

        r = mcd_avro_dir_read(dir, true, &d, why, sizeof(why));
        if (r < 0) {
                log_error("%s%s", ap->schemas ? "reload: the writer schemas in use are kept: " : "", why);
                return r;
        }
        for (unsigned i = 0; r == 0 && i < n; i++)
                r = mcd_avro_use_dir(ap->decoders ? ap->decoders[i] : ap->avro, d);
        if (r < 0) {
                log_error("schemas.dir %s: %s; the writer schemas in use are kept", dir, strerror(-r));
                for (unsigned i = 0; i < n; i++)
                        mcd_avro_use_dir(ap->decoders ? ap->decoders[i] : ap->avro, ap->schemas);
                mcd_avro_dir_free(d);
                return r;
        }
        if (mcd_avro_dir_missing(d) && strcmp(dir, MCD_SCHEMADIR) != 0)
                log_warning("schemas.dir %s does not exist: only the built-in schemas are known", dir);
        log_notice("schemas.dir %s: %zu writer schema file(s)", dir, mcd_avro_dir_count(d));
        mcd_avro_dir_free(ap->schemas);
        ap->schemas = d;
        return 0;
}
