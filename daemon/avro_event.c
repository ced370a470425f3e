/* avro_event.c -- events read straight from an Avro body into the model, by
 * a plan made once per writer schema.
 *
 * DESIGN: the decoder's general path (avro_decode.c) reads a body into a
 * libavro-c generic value and takes the model's fields from it by name,
 * with the reader's defaults: a copy of every string into the value, a
 * lookup per field, then a copy into the model.  When a writer schema has
 * exactly the fields the model reads (any order, extra fields skipped) and
 * their types are ones a plan step reads, this file makes a plan from it:
 * each field a step (a string, an optional string, a long, an optional
 * long, a boolean, an enum through a table of the writer's symbols, an
 * array of strings, a field skipped), the payload's branches each the plan
 * of its record.  The body was already walked (checked) with the writer
 * schema, so a plan only reads.  What the general path would refuse (a NUL
 * byte or bad UTF-8 in a string, a symbol the model does not know, null
 * where a value is required, a payload record the reader does not know)
 * makes the plan give up (-EAGAIN), and the general path decodes the
 * message again and names the fault in its dead letter.  A writer with a
 * field missing (a default to fill) or of another type has no plan: the
 * general path is its only path.  The two agree on every body
 * (tests/test_avro_event.c compares them on mutated messages). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"
#include "daemon/macro.h"

/* The model's values an event field can carry. */
enum value {
        V_EVENT_ID, V_OCCURRED_AT, V_CUSTOMER_ID, V_CLOUD, V_PAYLOAD, V_PARTNER_ID, V_INDIRECT_RESELLER_ID,
        V_CUSTOMER_IS_CSP_PARTNER, V_REASON, V_SUBSCRIPTION_ID, V_OFFER_NAME, V_BILLING, V_CHANNEL,
        V_SELLER_PARTNER_ID, V_TERM_END, V_TARGET_PARTNER_ID, V_CSP_SUBSCRIPTION_ID, V_SCOPE, V_SERVICES,
};

struct field_def {
        const char *name;
        enum value value;
        bool nullable;               /* null allowed (the general path's getters say the same) */
};

#define MAX_DEFS 6

static const struct field_def envelope_fields[MAX_DEFS] = {
        {"event_id", V_EVENT_ID, false}, {"occurred_at", V_OCCURRED_AT, false},
        {"customer_id", V_CUSTOMER_ID, false}, {"cloud", V_CLOUD, false}, {"payload", V_PAYLOAD, false},
};

/* Each event type's payload record, as avro_decode.c's getters read it. */
static const struct field_def payload_fields[MCD_EV__COUNT][MAX_DEFS] = {
        [MCD_EV_RELATIONSHIP_REQUESTED] = {{"partner_id", V_PARTNER_ID, false},
                                           {"indirect_reseller_id", V_INDIRECT_RESELLER_ID, true},
                                           {"customer_is_csp_partner", V_CUSTOMER_IS_CSP_PARTNER, false}},
        [MCD_EV_RELATIONSHIP_ACCEPTED] = {{"partner_id", V_PARTNER_ID, false}},
        [MCD_EV_RELATIONSHIP_REMOVED] = {{"partner_id", V_PARTNER_ID, false}, {"reason", V_REASON, true}},
        [MCD_EV_SUBSCRIPTION_REPORTED] = {{"subscription_id", V_SUBSCRIPTION_ID, false},
                                          {"offer_name", V_OFFER_NAME, false}, {"billing", V_BILLING, false},
                                          {"channel", V_CHANNEL, false},
                                          {"seller_partner_id", V_SELLER_PARTNER_ID, true},
                                          {"term_end", V_TERM_END, true}},
        [MCD_EV_SWITCH_REQUESTED] = {{"subscription_id", V_SUBSCRIPTION_ID, false},
                                     {"target_partner_id", V_TARGET_PARTNER_ID, false}},
        [MCD_EV_CSP_SUBSCRIPTION_CREATED] = {{"subscription_id", V_SUBSCRIPTION_ID, false},
                                             {"csp_subscription_id", V_CSP_SUBSCRIPTION_ID, false},
                                             {"partner_id", V_PARTNER_ID, false}},
        [MCD_EV_SUBSCRIPTION_CANCELLED] = {{"subscription_id", V_SUBSCRIPTION_ID, false},
                                           {"scope", V_SCOPE, false}, {"services", V_SERVICES, false}},
        [MCD_EV_SUBSCRIPTION_TERM_ENDED] = {{"subscription_id", V_SUBSCRIPTION_ID, false}},
};

/* ------------------------------------------------- the model's fields -- */

static char **text_of(struct mcd_event *ev, enum value v) {
        switch (v) {
        case V_EVENT_ID: return &ev->event_id;
        case V_CUSTOMER_ID: return &ev->customer_id;
        case V_PARTNER_ID: return &ev->partner_id;
        case V_INDIRECT_RESELLER_ID: return &ev->indirect_reseller_id;
        case V_REASON: return &ev->reason;
        case V_SUBSCRIPTION_ID: return &ev->subscription_id;
        case V_OFFER_NAME: return &ev->offer_name;
        case V_SELLER_PARTNER_ID: return &ev->seller_partner_id;
        case V_TARGET_PARTNER_ID: return &ev->target_partner_id;
        case V_CSP_SUBSCRIPTION_ID: return &ev->csp_subscription_id;
        default: return NULL;
        }
}

/* The model's value of an enum field's symbol, or -1. */
static int symbol_value(enum value v, const char *symbol) {
        switch (v) {
        case V_CLOUD: return mcd_cloud_from_name(symbol);
        case V_BILLING: return mcd_billing_from_name(symbol);
        case V_CHANNEL: return mcd_channel_from_name(symbol);
        case V_SCOPE: return mcd_scope_from_name(symbol);
        default: return -1;
        }
}

static void set_enum(struct mcd_event *ev, enum value v, int x) {
        switch (v) {
        case V_CLOUD: ev->cloud = (enum mcd_cloud)x; break;
        case V_BILLING: ev->billing = (enum mcd_billing)x; break;
        case V_CHANNEL: ev->channel = (enum mcd_channel)x; break;
        case V_SCOPE: ev->scope = (enum mcd_cancel_scope)x; break;
        default: break;
        }
}

/* ------------------------------------------------------------ the plan -- */

#define MAX_STEPS 24                 /* fields of one record of a writer, extra ones included */
#define MAX_SYMBOLS 32               /* of one enum of a writer */
#define MAX_BRANCHES 16              /* of the payload union */

enum step_type {
        STEP_STRING, STEP_OPT_STRING, STEP_LONG, STEP_OPT_LONG, STEP_BOOLEAN, STEP_ENUM, STEP_STRINGS, STEP_SKIP,
        STEP_PAYLOAD,
};

struct step {
        enum step_type type;
        enum value value;
        bool nullable;
        int null_branch;             /* STEP_OPT_*: the union's null branch */
        int n_symbols;               /* STEP_ENUM: the writer's symbols ... */
        int symbol[MAX_SYMBOLS];     /* ... each one's model value, -1 when the model has none */
        avro_schema_t skip;          /* STEP_SKIP: the field's schema, walked over */
};

struct record_plan {
        struct step step[MAX_STEPS]; /* in the writer's order of fields */
        size_t n;
};

struct mcd_event_plan {
        struct record_plan envelope;
        size_t n_branches;
        int type[MAX_BRANCHES];      /* per payload branch: its event type, -1: the general path's */
        struct record_plan payload[MAX_BRANCHES];
};

static const struct field_def *def_named(const struct field_def *defs, const char *name) {
        for (size_t i = 0; i < MAX_DEFS && defs[i].name; i++)
                if (strcmp(defs[i].name, name) == 0)
                        return &defs[i];
        return NULL;
}

/* A union of null and one branch of type t: the null branch's index, or -1. */
static int optional_of(avro_schema_t u, avro_type_t t) {
        int null_branch, value_branch;

        return mcd_avro_optional(u, t, &null_branch, &value_branch) == 0 ? null_branch : -1;
}

static int plan_enum(avro_schema_t s, struct step *st) {
        st->type = STEP_ENUM;
        st->n_symbols = (int)avro_schema_enum_number_of_symbols(s);
        if (st->n_symbols > MAX_SYMBOLS)
                return -EINVAL;
        for (int i = 0; i < st->n_symbols; i++)
                st->symbol[i] = symbol_value(st->value, avro_schema_enum_get(s, i));
        return 0;
}

/* The step reading field schema s as d's value. */
static int plan_step(const struct field_def *d, avro_schema_t s, struct step *st) {
        avro_type_t t = avro_typeof(s);

        *st = (struct step){.value = d->value, .nullable = d->nullable};
        switch (d->value) {
        case V_OCCURRED_AT:
        case V_TERM_END:
                st->type = t == AVRO_INT64 ? STEP_LONG : STEP_OPT_LONG;
                return t == AVRO_INT64 || (st->null_branch = optional_of(s, AVRO_INT64)) >= 0 ? 0 : -EINVAL;
        case V_CUSTOMER_IS_CSP_PARTNER:
                st->type = STEP_BOOLEAN;
                return t == AVRO_BOOLEAN ? 0 : -EINVAL;
        case V_CLOUD:
        case V_BILLING:
        case V_CHANNEL:
        case V_SCOPE:
                return t == AVRO_ENUM ? plan_enum(s, st) : -EINVAL;
        case V_SERVICES:
                st->type = STEP_STRINGS;
                return t == AVRO_ARRAY && avro_typeof(mcd_avro_deref(avro_schema_array_items(s))) == AVRO_STRING
                               ? 0
                               : -EINVAL;
        default:
                st->type = t == AVRO_STRING ? STEP_STRING : STEP_OPT_STRING;
                return t == AVRO_STRING || (st->null_branch = optional_of(s, AVRO_STRING)) >= 0 ? 0 : -EINVAL;
        }
}

/* Record rec's plan: a step per field, each of defs among them (a missing
 * one has no plan: its default is the general path's to fill). */
static int plan_record(avro_schema_t rec, const struct field_def *defs, struct record_plan *p) {
        size_t n_defs = 0, n = avro_schema_record_size(rec);
        unsigned found = 0;          /* defs met, one bit each */

        while (n_defs < MAX_DEFS && defs[n_defs].name)
                n_defs++;
        if (n > MAX_STEPS)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                const struct field_def *d = def_named(defs, avro_schema_record_field_name(rec, (int)i));
                avro_schema_t fs = mcd_avro_deref(avro_schema_record_field_get_by_index(rec, (int)i));
                int r = 0;

                if (d && (found & (1u << (d - defs))))
                        return -EINVAL;         /* a name twice: the general path's to judge */
                if (!d)
                        p->step[i] = (struct step){.type = STEP_SKIP, .skip = fs};
                else if (d->value == V_PAYLOAD)
                        p->step[i] = (struct step){.type = STEP_PAYLOAD, .value = V_PAYLOAD};
                else
                        r = plan_step(d, fs, &p->step[i]);
                if (r < 0)
                        return r;
                if (d)
                        found |= 1u << (d - defs);
        }
        p->n = n;
        return found == (1u << n_defs) - 1 ? 0 : -EINVAL;
}

/* The payload union u of a `kind` envelope: each record branch named as an
 * event type of that kind, and known to the reader schema, gets its plan. */
static int plan_payload(struct mcd_avro *a, enum mcd_avro_kind kind, avro_schema_t u, struct mcd_event_plan *p) {
        const struct schema_entry *reader = &a->v[a->reader[kind]];

        p->n_branches = avro_schema_union_size(u);
        if (avro_typeof(u) != AVRO_UNION || p->n_branches > MAX_BRANCHES)
                return -EINVAL;
        for (size_t i = 0; i < p->n_branches; i++) {
                avro_schema_t b = mcd_avro_deref(avro_schema_union_branch(u, (int)i));
                const char *name = avro_typeof(b) == AVRO_RECORD ? avro_schema_name(b) : NULL;
                int t = name ? mcd_event_type_from_name(mcd_avro_short_name(name)) : -1;

                if (t >= 0 && (mcd_event_is_relationship((enum mcd_event_type)t) != (kind == MCD_AVRO_RELATIONSHIP_EVENT) ||
                               !mcd_avro_reader_record(reader, name) ||
                               plan_record(b, payload_fields[t], &p->payload[i]) < 0))
                        t = -1;
                p->type[i] = t;
        }
        return 0;
}

int mcd_avro_event_plan_new(struct mcd_avro *a, const struct schema_entry *e, struct mcd_event_plan **out) {
        struct mcd_event_plan *p;
        int r;

        *out = NULL;
        if (e->kind != MCD_AVRO_RELATIONSHIP_EVENT && e->kind != MCD_AVRO_SUBSCRIPTION_EVENT)
                return -EINVAL;
        if (!(p = calloc(1, sizeof(*p))))
                return -ENOMEM;
        r = plan_record(e->schema, envelope_fields, &p->envelope);
        for (size_t i = 0; r == 0 && i < p->envelope.n; i++)
                if (p->envelope.step[i].type == STEP_PAYLOAD)
                        r = plan_payload(a, e->kind,
                                         mcd_avro_deref(avro_schema_record_field_get_by_index(e->schema, (int)i)), p);
        if (r < 0) {
                free(p);
                return r;
        }
        *out = p;
        return 0;
}

/* ------------------------------------------------------------ reading -- */

/* A zigzag varint, read as the walk reads it (the walk already checked it:
 * a failure here is the general path's to name). */
static int read_long(struct walk *c, int64_t *out) {
        return mcd_avro_walk_long(c, out) == 0 ? 0 : -EAGAIN;
}

/* A read in progress: the walk over the body, and the event's block of
 * strings (ev->strings) being filled.  The block is as long as the body: a
 * string of n bytes takes at least 1 + n of the body (its length first) and
 * n + 1 of the block (its NUL last), so every string of the body fits. */
struct reader {
        struct walk w;
        char *out, *out_end;            /* the block's free part */
};

/* A string the model keeps (no NUL byte, valid UTF-8), copied to the block. */
static int read_text(struct reader *r, char **dst) {
        struct walk *c = &r->w;
        const char *fault;
        int64_t n;

        if (read_long(c, &n) < 0 || n < 0 || (uint64_t)n > (uint64_t)(c->end - c->p) ||
            (uint64_t)n >= (uint64_t)(r->out_end - r->out) || mcd_avro_text_check(c->p, (size_t)n, &fault) < 0)
                return -EAGAIN;
        memcpy(r->out, c->p, (size_t)n);
        r->out[n] = '\0';
        *dst = r->out;
        r->out += n + 1;
        c->p += n;
        return 0;
}

/* The union index of an optional value: 1 when it holds a value, 0 null. */
static int read_present(struct walk *c, const struct step *st, bool *present) {
        int64_t branch;

        if (read_long(c, &branch) < 0 || branch < 0 || branch > 1)
                return -EAGAIN;
        *present = branch != st->null_branch;
        return *present || st->nullable ? 0 : -EAGAIN;
}

/* An array of strings, blocks of items (a negative count carries the
 * block's size, not needed here). */
static int read_strings(struct reader *rd, struct mcd_event *ev) {
        struct walk *c = &rd->w;
        size_t cap = 0;
        int64_t count, size;
        int r;

        for (;;) {
                if (read_long(c, &count) < 0)
                        return -EAGAIN;
                if (count == 0)
                        return 0;
                if (count < 0 && (count == INT64_MIN || read_long(c, &size) < 0))
                        return -EAGAIN;
                count = count < 0 ? -count : count;
                if ((uint64_t)count > (uint64_t)(c->end - c->p))
                        return -EAGAIN;
                if (ev->n_services + (size_t)count > cap) {
                        char **v = realloc(ev->services, (ev->n_services + (size_t)count) * sizeof(*v));
                        if (!v)
                                return -ENOMEM;
                        ev->services = v;
                        cap = ev->n_services + (size_t)count;
                }
                for (int64_t i = 0; i < count; i++, ev->n_services++)
                        if ((r = read_text(rd, &ev->services[ev->n_services])) < 0)
                                return r;
        }
}

static int read_record(const struct mcd_event_plan *p, const struct record_plan *rp, struct reader *rd,
                       struct mcd_event *ev);

/* One step: 0, -EAGAIN (the general path decides) or -ENOMEM. */
static int read_step(const struct mcd_event_plan *p, const struct step *st, struct reader *rd,
                     struct mcd_event *ev) {
        struct walk *c = &rd->w;
        bool present = true;
        int64_t x;
        int r = 0;

        switch (st->type) {
        case STEP_OPT_STRING:
                if ((r = read_present(c, st, &present)) < 0 || !present)
                        return r;
                /* fall through */
        case STEP_STRING:
                return read_text(rd, text_of(ev, st->value));
        case STEP_OPT_LONG:
                if ((r = read_present(c, st, &present)) < 0 || !present)
                        return r;
                /* fall through */
        case STEP_LONG:
                if (read_long(c, &x) < 0)
                        return -EAGAIN;
                if (st->value == V_TERM_END)
                        ev->has_term_end = true, ev->term_end = x;
                else
                        ev->occurred_at = x;
                return 0;
        case STEP_BOOLEAN:
                if (c->p == c->end || *c->p > 1)
                        return -EAGAIN;
                ev->customer_is_csp_partner = *c->p++ == 1;
                return 0;
        case STEP_ENUM:
                if (read_long(c, &x) < 0 || x < 0 || x >= st->n_symbols || st->symbol[x] < 0)
                        return -EAGAIN;
                set_enum(ev, st->value, st->symbol[x]);
                return 0;
        case STEP_STRINGS:
                return read_strings(rd, ev);
        case STEP_SKIP:
                return mcd_avro_walk_value(c, st->skip, 0) == 0 && !c->nonfinite ? 0 : -EAGAIN;
        case STEP_PAYLOAD:
                if (read_long(c, &x) < 0 || x < 0 || (size_t)x >= p->n_branches || p->type[x] < 0)
                        return -EAGAIN;
                ev->type = (enum mcd_event_type)p->type[x];
                return read_record(p, &p->payload[x], rd, ev);
        }
        return -EAGAIN;
}

static int read_record(const struct mcd_event_plan *p, const struct record_plan *rp, struct reader *rd,
                       struct mcd_event *ev) {
        int r = 0;

        for (size_t i = 0; i < rp->n && r == 0; i++)
                r = read_step(p, &rp->step[i], rd, ev);
        return r;
}

int mcd_avro_event_plan_read(const struct mcd_event_plan *p, const unsigned char *body, size_t n,
                             struct mcd_event *ev) {
        struct reader rd = {.w = {.p = body, .end = body + n, .items_left = n + MAX_ITEMS_SLACK}};
        int r;

        if (!(ev->strings = malloc(n + 1)))
                return -ENOMEM;
        rd.out = ev->strings;
        rd.out_end = ev->strings + n + 1;
        r = read_record(p, &p->envelope, &rd, ev);
        return r == 0 && rd.w.p != rd.w.end ? -EAGAIN : r;
}
