/* avro_outcome.c -- outcomes to Avro binary by a plan made from the outcome
 * schema, with no generic value in between.
 *
 * DESIGN: every outcome the batch path makes is encoded here, which made
 * this the codec's hottest writer: through libavro-c's generic values an
 * outcome cost a copy of each string, a lookup of each enum symbol and
 * union branch by name, a walk to size it and a walk to write it.  Now the
 * outcome schema (ours, embedded) is matched once, field by field, to the
 * model's values (the tables below: the one place that says which field
 * carries what), and each field becomes a step of a plan: a string, an
 * optional string (a union of null and string, either order), a long, a
 * boolean, an enum (the model's value -> the schema's symbol index), or the
 * payload (the union's branch for the outcome's type, then that record's
 * plan).  A field the tables do not name, a value they name that the
 * schema lacks, or a type the value cannot be written as fails the plan
 * (-EINVAL), so a schema and this file cannot drift apart silently.
 * Encoding is one pass over the plan into a scratch buffer sized from the
 * outcome's strings, kept by the codec between outcomes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"
#include "daemon/macro.h"

/* The model's values an outcome field can carry. */
enum value {
        V_EVENT_ID, V_CAUSED_BY, V_CUSTOMER_ID, V_CLOUD, V_OCCURRED_AT, V_PARTNER_ID, V_SUBSCRIPTION_ID,
        V_CUSTOMER_STATE, V_MESSAGE, V_PAYLOAD, V_FROM_STATE, V_TO_STATE, V_REASON, V_BILLING, V_CHANNEL,
        V_NEXT_ACTION, V_TERM_END, V_SWITCH_REASON, V_CSP_SUBSCRIPTION_ID, V_COEXISTS, V_REJECTED_EVENT_TYPE,
};

struct field_def {
        const char *name;            /* the schema's field */
        enum value value;            /* what it carries */
};

#define MAX_FIELDS 12                /* of one record of the outcome schema */

static const struct field_def outcome_fields[] = {
        {"event_id", V_EVENT_ID}, {"caused_by", V_CAUSED_BY}, {"customer_id", V_CUSTOMER_ID},
        {"cloud", V_CLOUD}, {"occurred_at", V_OCCURRED_AT}, {"partner_id", V_PARTNER_ID},
        {"subscription_id", V_SUBSCRIPTION_ID}, {"customer_state", V_CUSTOMER_STATE},
        {"message", V_MESSAGE}, {"payload", V_PAYLOAD}, {NULL, 0},
};

/* Each outcome type's payload record, named as the type. */
static const struct field_def payload_fields[MCD_OUT__COUNT][4] = {
        [MCD_OUT_CUSTOMER_STATE_CHANGED] = {{"from_state", V_FROM_STATE}, {"to_state", V_TO_STATE}},
        [MCD_OUT_RESALE_REJECTED] = {{"reason", V_REASON}},
        [MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED] = {{"billing", V_BILLING}, {"channel", V_CHANNEL}},
        [MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED] = {{"billing", V_BILLING}, {"channel", V_CHANNEL},
                                                   {"next_action", V_NEXT_ACTION}},
        [MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END] = {{"term_end", V_TERM_END}, {"channel", V_CHANNEL}},
        [MCD_OUT_SWITCH_ALLOWED] = {{"reason", V_SWITCH_REASON}},
        [MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED] = {{"csp_subscription_id", V_CSP_SUBSCRIPTION_ID},
                                                    {"legacy_channel", V_CHANNEL}, {"coexists", V_COEXISTS}},
        [MCD_OUT_SUBSCRIPTION_MIGRATED] = {{"csp_subscription_id", V_CSP_SUBSCRIPTION_ID}},
        [MCD_OUT_TRANSITION_REJECTED] = {{"reason", V_REASON}, {"rejected_event_type", V_REJECTED_EVENT_TYPE}},
};

/* ------------------------------------------------- the model's values -- */

/* Text values: NULL is null in an optional field, "" in a required one. */
static bool is_text(enum value v) {
        return v == V_EVENT_ID || v == V_CAUSED_BY || v == V_CUSTOMER_ID || v == V_PARTNER_ID ||
               v == V_SUBSCRIPTION_ID || v == V_MESSAGE || v == V_REASON || v == V_CSP_SUBSCRIPTION_ID ||
               v == V_REJECTED_EVENT_TYPE;
}

static const char *text_of(const struct mcd_outcome *o, enum value v) {
        switch (v) {
        case V_EVENT_ID: return o->event_id;
        case V_CAUSED_BY: return o->caused_by;
        case V_CUSTOMER_ID: return o->customer_id;
        case V_PARTNER_ID: return o->partner_id;
        case V_SUBSCRIPTION_ID: return o->subscription_id;
        case V_MESSAGE: return o->message;
        case V_REASON: return o->reason;
        case V_CSP_SUBSCRIPTION_ID: return o->csp_subscription_id;
        case V_REJECTED_EVENT_TYPE: return o->rejected_event_type;
        default: return NULL;
        }
}

/* A number, a flag or an enum's model value. */
static int64_t number_of(const struct mcd_outcome *o, enum value v) {
        switch (v) {
        case V_CLOUD: return o->cloud;
        case V_OCCURRED_AT: return o->occurred_at;
        case V_CUSTOMER_STATE: return o->customer_state;
        case V_FROM_STATE: return o->from_state;
        case V_TO_STATE: return o->to_state;
        case V_BILLING: return o->billing;
        case V_CHANNEL: return o->channel;
        case V_NEXT_ACTION: return o->next_action;
        case V_TERM_END: return o->term_end;
        case V_SWITCH_REASON: return o->switch_reason;
        case V_COEXISTS: return o->coexists;
        default: return 0;
        }
}

/* An enum value's symbol for model value i, NULL past its last. */
static const char *symbol_of(enum value v, int i) {
        switch (v) {
        case V_CLOUD: return i < MCD_CLOUD__COUNT ? mcd_cloud_name((enum mcd_cloud)i) : NULL;
        case V_CUSTOMER_STATE:
        case V_FROM_STATE:
        case V_TO_STATE: return i < MCD_CS__COUNT ? mcd_customer_state_name((enum mcd_customer_state)i) : NULL;
        case V_BILLING: return i < MCD_BILLING__COUNT ? mcd_billing_name((enum mcd_billing)i) : NULL;
        case V_CHANNEL: return i < MCD_CHANNEL__COUNT ? mcd_channel_name((enum mcd_channel)i) : NULL;
        case V_NEXT_ACTION: return i < MCD_NEXT__COUNT ? mcd_next_action_name((enum mcd_next_action)i) : NULL;
        case V_SWITCH_REASON:
                return i < MCD_SWITCH__COUNT ? mcd_switch_reason_name((enum mcd_switch_reason)i) : NULL;
        default: return NULL;
        }
}

/* ------------------------------------------------------------ the plan -- */

#define MAX_SYMBOLS 8                /* model values of the largest enum */

enum step_type { STEP_STRING, STEP_OPT_STRING, STEP_LONG, STEP_BOOLEAN, STEP_ENUM, STEP_PAYLOAD };

struct step {
        enum value value;
        enum step_type type;
        int null_branch, string_branch;      /* STEP_OPT_STRING: the union's */
        int n_symbols;                       /* STEP_ENUM: model values ... */
        int symbol[MAX_SYMBOLS];             /* ... and each one's index among the schema's symbols */
};

struct record_plan {
        struct step step[MAX_FIELDS];        /* in the schema's order of fields */
        size_t n;
};

struct mcd_outcome_plan {
        uint64_t fp;                         /* the schema it was made from */
        struct record_plan outcome;
        int branch[MCD_OUT__COUNT];          /* the payload union's branch of each outcome type */
        struct record_plan payload[MCD_OUT__COUNT];
};

static const struct field_def *def_named(const struct field_def *defs, size_t n, const char *name) {
        for (size_t i = 0; i < n && defs[i].name; i++)
                if (strcmp(defs[i].name, name) == 0)
                        return &defs[i];
        return NULL;
}

/* A ["null", "string"] union, either order: its two branches. */
static int plan_optional(avro_schema_t u, struct step *st) {
        st->type = STEP_OPT_STRING;
        return mcd_avro_optional(u, AVRO_STRING, &st->null_branch, &st->string_branch);
}

/* Every model value of st's enum mapped to one of schema s's symbols. */
static int plan_enum(avro_schema_t s, struct step *st) {
        const char *name;

        st->type = STEP_ENUM;
        for (st->n_symbols = 0; (name = symbol_of(st->value, st->n_symbols)); st->n_symbols++) {
                if (st->n_symbols == MAX_SYMBOLS)
                        return -EINVAL;
                st->symbol[st->n_symbols] = avro_schema_enum_get_by_name(s, name);
                if (st->symbol[st->n_symbols] < 0)
                        return -EINVAL;
        }
        return 0;
}

/* The step writing value v as a field of schema s. */
static int plan_step(enum value v, avro_schema_t s, struct step *st) {
        avro_type_t t = avro_typeof(s);

        *st = (struct step){.value = v};
        if (is_text(v)) {
                st->type = STEP_STRING;
                return t == AVRO_STRING ? 0 : t == AVRO_UNION ? plan_optional(s, st) : -EINVAL;
        }
        if (v == V_OCCURRED_AT || v == V_TERM_END) {
                st->type = STEP_LONG;
                return t == AVRO_INT64 ? 0 : -EINVAL;
        }
        if (v == V_COEXISTS) {
                st->type = STEP_BOOLEAN;
                return t == AVRO_BOOLEAN ? 0 : -EINVAL;
        }
        return t == AVRO_ENUM ? plan_enum(s, st) : -EINVAL;
}

/* Record schema rec's plan: each field named in defs (n at most), and
 * every one of defs a field.  The payload, named too, is a step of its own,
 * planned by plan_payload. */
static int plan_record(avro_schema_t rec, const struct field_def *defs, size_t n, struct record_plan *p) {
        size_t n_defs = 0, n_fields = avro_schema_record_size(rec);

        while (n_defs < n && defs[n_defs].name)
                n_defs++;
        if (avro_typeof(rec) != AVRO_RECORD || n_fields != n_defs || n_fields > MAX_FIELDS)
                return -EINVAL;
        for (size_t i = 0; i < n_fields; i++) {
                const struct field_def *d = def_named(defs, n_defs, avro_schema_record_field_name(rec, (int)i));
                avro_schema_t fs = mcd_avro_deref(avro_schema_record_field_get_by_index(rec, (int)i));
                int r;

                if (!d)
                        return -EINVAL;
                if (d->value == V_PAYLOAD) {
                        p->step[i] = (struct step){.value = V_PAYLOAD, .type = STEP_PAYLOAD};
                        r = avro_typeof(fs) == AVRO_UNION ? 0 : -EINVAL;
                } else {
                        r = plan_step(d->value, fs, &p->step[i]);
                }
                if (r < 0)
                        return r;
        }
        p->n = n_fields;
        return 0;
}

/* The payload union u: each outcome type's branch (the record named as the
 * type) and its plan. */
static int plan_payload(avro_schema_t u, struct mcd_outcome_plan *p) {
        size_t n = avro_schema_union_size(u);

        for (int t = 0; t < MCD_OUT__COUNT; t++) {
                const char *name = mcd_outcome_type_name((enum mcd_outcome_type)t);
                int r;

                p->branch[t] = -1;
                for (size_t i = 0; i < n && p->branch[t] < 0; i++) {
                        avro_schema_t b = mcd_avro_deref(avro_schema_union_branch(u, (int)i));
                        if (avro_typeof(b) == AVRO_RECORD && strcmp(avro_schema_name(b), name) == 0)
                                p->branch[t] = (int)i;
                }
                if (p->branch[t] < 0)
                        return -EINVAL;
                r = plan_record(mcd_avro_deref(avro_schema_union_branch(u, p->branch[t])), payload_fields[t],
                                ELEMENTSOF(payload_fields[t]), &p->payload[t]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int mcd_avro_outcome_plan_new(const struct schema_entry *e, struct mcd_outcome_plan **out) {
        struct mcd_outcome_plan *p = calloc(1, sizeof(*p));
        int r;

        *out = NULL;
        if (!p)
                return -ENOMEM;
        r = plan_record(e->schema, outcome_fields, ELEMENTSOF(outcome_fields), &p->outcome);
        for (size_t i = 0; r == 0 && i < p->outcome.n; i++)
                if (p->outcome.step[i].type == STEP_PAYLOAD)
                        r = plan_payload(mcd_avro_deref(avro_schema_record_field_get_by_index(e->schema, (int)i)), p);
        if (r < 0) {
                free(p);
                return r;
        }
        p->fp = e->fp;
        *out = p;
        return 0;
}

/* ------------------------------------------------------------ writing -- */

#define VARINT_MAX 10                /* bytes of a zigzag varint of 64 bits */

static unsigned char *put_long(unsigned char *p, int64_t v) {
        uint64_t z = ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));

        while (z >= 0x80) {
                *p++ = (unsigned char)(z | 0x80);
                z >>= 7;
        }
        *p++ = (unsigned char)z;
        return p;
}

/* Writes string s at p, if it fits before end; NULL if not. */
static unsigned char *put_text(unsigned char *p, const unsigned char *end, const char *s) {
        size_t n = strlen(s);

        if ((size_t)(end - p) < VARINT_MAX + n)
                return NULL;
        p = put_long(p, (int64_t)n);
        memcpy(p, s, n);
        return p + n;
}

/* Writes record plan rp of outcome o at *pp, which it advances, before
 * end.  0; -ENOSPC when it would pass end (*pp is then left as it was);
 * -EINVAL for an enum value out of its range.  Each string's length is
 * taken once, as it is written: no pass to size the record first. */
static int write_record(const struct mcd_outcome_plan *pl, const struct record_plan *rp,
                        const struct mcd_outcome *o, unsigned char **pp, const unsigned char *end) {
        unsigned char *p = *pp;
        int r = 0;

        for (size_t i = 0; i < rp->n && r == 0; i++) {
                const struct step *st = &rp->step[i];
                const char *s = text_of(o, st->value);
                int64_t x = number_of(o, st->value);

                if (end - p < 2 * VARINT_MAX)   /* a union's branch and a number, or a string's length */
                        return -ENOSPC;
                switch (st->type) {
                case STEP_STRING:
                        p = put_text(p, end, s ? s : "");
                        break;
                case STEP_OPT_STRING:
                        p = put_long(p, s ? st->string_branch : st->null_branch);
                        if (s)
                                p = put_text(p, end, s);
                        break;
                case STEP_LONG:
                        p = put_long(p, x);
                        break;
                case STEP_BOOLEAN:
                        *p++ = x ? 1 : 0;
                        break;
                case STEP_ENUM:
                        if (x < 0 || x >= st->n_symbols)
                                return -EINVAL;
                        p = put_long(p, st->symbol[x]);
                        break;
                case STEP_PAYLOAD:
                        p = put_long(p, pl->branch[o->type]);
                        r = write_record(pl, &pl->payload[o->type], o, &p, end);
                        break;
                }
                if (!p)
                        return -ENOSPC;
        }
        if (r == 0)
                *pp = p;
        return r;
}

/* a->outcome_plan made for the outcome reader schema e, the first time and
 * whenever that schema changed. */
static int plan_for(struct mcd_avro *a, const struct schema_entry *e) {
        struct mcd_outcome_plan *p;
        int r;

        if (a->outcome_plan && a->outcome_plan->fp == e->fp)
                return 0;
        if ((r = mcd_avro_outcome_plan_new(e, &p)) < 0)
                return r;
        free(a->outcome_plan);
        a->outcome_plan = p;
        return 0;
}

#define OBUF_MIN 1024                /* the scratch buffer's first size: a header and most outcomes */

/* Room for n bytes in a's scratch buffer (kept at its largest). */
static int scratch(struct mcd_avro *a, size_t n) {
        unsigned char *p;

        if (n <= a->obuf_cap)
                return 0;
        if (!(p = realloc(a->obuf, n)))
                return -ENOMEM;
        a->obuf = p;
        a->obuf_cap = n;
        return 0;
}

int mcd_avro_outcome_bytes(struct mcd_avro *a, const struct mcd_outcome *o, const void **buf, size_t *len) {
        const struct schema_entry *e;
        unsigned char *p;
        int r;

        if (!a || !o || (unsigned)o->type >= MCD_OUT__COUNT)
                return -EINVAL;
        e = &a->v[a->reader[MCD_AVRO_OUTCOME]];
        if ((r = plan_for(a, e)) < 0 || (r = scratch(a, OBUF_MIN)) < 0)
                return r;
        for (;;) {      /* an outcome larger than the buffer grows it and is written again */
                p = a->obuf + mcd_avro_header_write(e, a->outcome_confluent ? &a->outcome_id : NULL, a->obuf);
                if ((r = write_record(a->outcome_plan, &a->outcome_plan->outcome, o, &p, a->obuf + a->obuf_cap)) !=
                    -ENOSPC)
                        break;
                if ((r = scratch(a, 2 * a->obuf_cap)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *buf = a->obuf;
        *len = (size_t)(p - a->obuf);
        return 0;
}

int mcd_avro_encode_outcome(struct mcd_avro *a, const struct mcd_outcome *o, void **buf, size_t *len) {
        const void *bytes;
        size_t n;
        int r = mcd_avro_outcome_bytes(a, o, &bytes, &n);

        if (r < 0)
                return r;
        if (!(*buf = malloc(n)))
                return -ENOMEM;
        memcpy(*buf, bytes, n);
        *len = n;
        return 0;
}
