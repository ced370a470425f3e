/* avro_decode.c -- single-object encoded Avro to events and outcomes.
 *
 * A message's header names its writer schema; the body is walked (checked)
 * with it, then read by libavro-c into a generic value of that schema, and
 * the model takes its fields from the value by name (avro_view.c), the
 * reader schema's defaults filling the fields the writer lacks ([Avro schema
 * resolution]), so that fields may be added, removed or reordered between
 * versions.  libavro-c's resolved reader is not used: it ignores defaults
 * and crashes when the writer lacks a defaulted field.  Every failure is a
 * dead-letter code and one sentence.
 *
 * DESIGN: no JSON between the bytes and the model.  Each writer schema keeps
 * one generic value (struct schema_entry.value) and the codec one memory
 * reader, reused by every message: a decode allocates the strings the model
 * keeps and what libavro-c allocates to read strings, nothing else. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"

/* ------------------------------------------------------- decoding -- */

/* The writer schema of a single-object encoded message. */
static int single_object_writer(struct mcd_avro *a, const unsigned char *p, size_t len,
                                struct schema_entry **e, struct mcd_avro_error *err) {
        uint64_t fp = 0;

        if (len < SOE_HEADER_SIZE)
                return mcd_avro_fail(err, MCD_DLQ_BAD_MAGIC,
                                     "The message is %zu bytes long, shorter than the 10-byte Avro single-object "
                                     "header.",
                                     len);
        for (int i = 0; i < 8; i++)
                fp |= (uint64_t)p[2 + i] << (8 * i);
        *e = mcd_avro_find_entry(a, fp);
        if (!*e)
                return mcd_avro_fail(err, MCD_DLQ_UNKNOWN_SCHEMA,
                                     "The writer schema fingerprint 0x%016llx is not a schema this daemon knows.",
                                     (unsigned long long)fp);
        return 0;
}

/* Reads a checked body into e's generic value, created on first use and
 * then reused, with the codec's one memory reader. */
static int read_body(struct mcd_avro *a, struct schema_entry *e, const unsigned char *body, size_t n,
                     struct mcd_avro_error *err) {
        if (!e->value.iface && avro_generic_value_new(e->iface, &e->value) != 0) {
                e->value = (avro_value_t){ 0 };
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be decoded: out of memory.");
        }
        if (a->mem_reader)
                avro_reader_memory_set_source(a->mem_reader, (const char *)body, (int64_t)n);
        else if (!(a->mem_reader = avro_reader_memory((const char *)body, (int64_t)n)))
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be decoded: out of memory.");
        if (avro_value_read(a->mem_reader, &e->value) != 0)
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %s", avro_strerror());
        return 0;
}

/* Checks the header (either framing), finds the writer schema (*e) and
 * checks the body, which starts at buf + *hdr.  -EAGAIN when the registry
 * could not be asked (mcd_avro_decode_event). */
static int check_message(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                         struct schema_entry **e, size_t *hdr, struct mcd_avro_error *err) {
        const unsigned char *p = buf;
        struct walk w;
        int r;

        if (!p || len < 2 || !((p[0] == SOE_MAGIC0 && p[1] == SOE_MAGIC1) || p[0] == CONFLUENT_MAGIC)) {
                if (!p || len < 2)
                        return mcd_avro_fail(err, MCD_DLQ_BAD_MAGIC,
                                             "The message is %zu bytes long, shorter than any Avro header.",
                                             p ? len : 0);
                return mcd_avro_fail(err, MCD_DLQ_BAD_MAGIC,
                                     "The message starts with 0x%02X 0x%02X, neither the Avro single-object marker "
                                     "0xC3 0x01 nor the Confluent wire-format byte 0x00.",
                                     p[0], p[1]);
        }
        if (p[0] == CONFLUENT_MAGIC) {
                *hdr = CONFLUENT_HEADER_SIZE;
                r = mcd_avro_confluent_writer(a, p, len, e, err);
        } else {
                *hdr = SOE_HEADER_SIZE;
                r = single_object_writer(a, p, len, e, err);
        }
        if (r < 0)
                return r;
        if ((*e)->kind != expected)
                return mcd_avro_fail(err, MCD_DLQ_WRONG_TOPIC,
                                     "The message is a %s, but this topic carries %s values.",
                                     mcd_avro_kind_names[(*e)->kind], mcd_avro_kind_names[expected]);

        w = (struct walk){ .p = p + *hdr, .end = p + len, .items_left = len + MAX_ITEMS_SLACK };
        if (mcd_avro_walk_value(&w, (*e)->schema, 0) < 0)
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %s.", w.why);
        if (w.p != w.end)
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO,
                                     "The Avro body is corrupt: %zu byte%s follow%s the value.",
                                     (size_t)(w.end - w.p), w.end - w.p == 1 ? "" : "s", w.end - w.p == 1 ? "s" : "");
        /* JSON, which the model's values once went through, has no NaN. */
        if (w.nonfinite)
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO,
                                     "The Avro body could not be converted: a float or double is not a finite number.");
        return 0;
}

json_t *mcd_avro_reader_record(const struct schema_entry *reader, const char *name) {
        const char *key;
        json_t *def;

        json_object_foreach(reader->records, key, def)
                if (strcmp(mcd_avro_short_name(key), mcd_avro_short_name(name)) == 0)
                        return def;
        return NULL;
}

#define GET_ENUM(g, name, from_name, dst)                                                         \
        ({                                                                                        \
                int v_ = 0, r_ = mcd_avro_get_enum((g), (name), (from_name), &v_);                \
                if (r_ == 0)                                                                      \
                        (dst) = v_;                                                               \
                r_;                                                                               \
        })

static int event_payload_from_value(struct mcd_avro_fields *g, struct mcd_event *ev) {
        int r = 0;

        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                if ((r = mcd_avro_get_string(g, "partner_id", false, &ev->partner_id)) < 0 ||
                    (r = mcd_avro_get_string(g, "indirect_reseller_id", true, &ev->indirect_reseller_id)) < 0)
                        return r;
                return mcd_avro_get_bool(g, "customer_is_csp_partner", &ev->customer_is_csp_partner);
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                return mcd_avro_get_string(g, "partner_id", false, &ev->partner_id);
        case MCD_EV_RELATIONSHIP_REMOVED:
                if ((r = mcd_avro_get_string(g, "partner_id", false, &ev->partner_id)) < 0)
                        return r;
                return mcd_avro_get_string(g, "reason", true, &ev->reason);
        case MCD_EV_SUBSCRIPTION_REPORTED:
                if ((r = mcd_avro_get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = mcd_avro_get_string(g, "offer_name", false, &ev->offer_name)) < 0 ||
                    (r = GET_ENUM(g, "billing", mcd_billing_from_name, ev->billing)) < 0 ||
                    (r = GET_ENUM(g, "channel", mcd_channel_from_name, ev->channel)) < 0 ||
                    (r = mcd_avro_get_string(g, "seller_partner_id", true, &ev->seller_partner_id)) < 0)
                        return r;
                return mcd_avro_get_long(g, "term_end", true, &ev->has_term_end, &ev->term_end);
        case MCD_EV_SWITCH_REQUESTED:
                if ((r = mcd_avro_get_string(g, "subscription_id", false, &ev->subscription_id)) < 0)
                        return r;
                return mcd_avro_get_string(g, "target_partner_id", false, &ev->target_partner_id);
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                if ((r = mcd_avro_get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = mcd_avro_get_string(g, "csp_subscription_id", false, &ev->csp_subscription_id)) < 0)
                        return r;
                return mcd_avro_get_string(g, "partner_id", false, &ev->partner_id);
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                if ((r = mcd_avro_get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = GET_ENUM(g, "scope", mcd_scope_from_name, ev->scope)) < 0)
                        return r;
                return mcd_avro_get_string_array(g, "services", &ev->services, &ev->n_services);
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                return mcd_avro_get_string(g, "subscription_id", false, &ev->subscription_id);
        default:
                return -EINVAL;
        }
}

/* A message read: its envelope and payload, each with the reader's record
 * definition whose defaults fill the fields the writer lacks. */
struct decoded {
        struct mcd_avro_obj env;        /* the envelope record */
        struct mcd_avro_obj payload;    /* its payload record */
        json_t *env_def, *payload_def;  /* the reader's definitions (borrowed) */
        const char *type;               /* payload record name, borrowed */
};

/* Splits the payload, {"RecordName": {...}} in Avro's JSON encoding, into
 * its name and record. */
static int split_payload(struct decoded *d, const char *envelope, struct mcd_avro_error *err) {
        avro_value_t p;
        struct mcd_avro_obj u;

        if (!mcd_avro_obj_get(&d->env, "payload", &p))
                return mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT, "The %s has no payload field.", envelope);
        if (mcd_avro_obj_of(&p, &u) < 0 || mcd_avro_obj_only_member(&u, &d->type, &d->payload) < 0)
                return mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT, "The payload of the %s is not a record.", envelope);
        return 0;
}

/* The body of a message check_message passed (writer e, at body), read
 * into the writer's generic value and split into envelope and payload. */
static int decode_envelope(struct mcd_avro *a, enum mcd_avro_kind kind, struct schema_entry *e,
                           const unsigned char *body, size_t n, struct decoded *d, struct mcd_avro_error *err) {
        const struct schema_entry *reader = &a->v[a->reader[kind]];
        int r;

        if ((r = read_body(a, e, body, n, err)) < 0)
                return r;
        if (mcd_avro_obj_of(&e->value, &d->env) < 0)
                return mcd_avro_fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be converted: out of memory.");
        if ((r = split_payload(d, mcd_avro_kind_names[kind], err)) < 0)
                return r;
        d->env_def = reader->root;
        d->payload_def = mcd_avro_reader_record(reader, d->type);
        if (!d->payload_def)
                return mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT, "The %s carries the unknown payload record %.60s.",
                                     mcd_avro_kind_names[kind], d->type);
        return 0;
}

static int event_from_value(struct decoded *d, enum mcd_avro_kind kind, struct mcd_event *ev,
                           struct mcd_avro_error *err) {
        struct mcd_avro_fields env = {
                .obj = d->env, .reader_def = d->env_def, .record = mcd_avro_kind_names[kind], .err = err
        };
        struct mcd_avro_fields pay = { .obj = d->payload, .reader_def = d->payload_def, .err = err };
        int t = mcd_event_type_from_name(mcd_avro_short_name(d->type)), r;

        if (t < 0)
                return mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT, "The %s carries the unknown event type %.60s.",
                                     mcd_avro_kind_names[kind], d->type);
        if (mcd_event_is_relationship((enum mcd_event_type)t) != (kind == MCD_AVRO_RELATIONSHIP_EVENT))
                return mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT, "A %s cannot carry a %s payload.",
                                     mcd_avro_kind_names[kind], d->type);
        ev->type = (enum mcd_event_type)t;
        pay.record = mcd_event_type_name(ev->type);
        if ((r = mcd_avro_get_string(&env, "event_id", false, &ev->event_id)) < 0 ||
            (r = mcd_avro_get_time(&env, "occurred_at", &ev->occurred_at)) < 0 ||
            (r = mcd_avro_get_string(&env, "customer_id", false, &ev->customer_id)) < 0 ||
            (r = GET_ENUM(&env, "cloud", mcd_cloud_from_name, ev->cloud)) < 0)
                return r;
        return event_payload_from_value(&pay, ev);
}

/* The fast path: a message check_message passed (writer *e, its body at
 * buf + *hdr) read by its writer's plan (avro_event.c), made the first
 * time.  0; 1 when the general path is to read it (ev cleared); or
 * check_message's failure. */
static int decode_planned(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                          struct schema_entry **e, size_t *hdr, struct mcd_event *ev, struct mcd_avro_error *err) {
        int r;

        if ((r = check_message(a, expected, buf, len, e, hdr, err)) < 0)
                return r;
        if ((*e)->event_plan_state == 0 && (r = mcd_avro_event_plan_new(a, *e, &(*e)->event_plan)) != -ENOMEM)
                (*e)->event_plan_state = r == 0 ? 1 : -1;  /* out of memory: tried again next time */
        if ((*e)->event_plan_state <= 0 || a->no_plans)
                return 1;
        r = mcd_avro_event_plan_read((*e)->event_plan, (const unsigned char *)buf + *hdr, len - *hdr, ev);
        if (r < 0) {
                mcd_event_clear(ev);
                *ev = (struct mcd_event){ 0 };
                return 1;
        }
        return 0;
}

int mcd_avro_decode_event(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                          struct mcd_event *ev, struct mcd_avro_error *err) {
        struct decoded d = { 0 };
        struct mcd_event tmp = { 0 };
        struct schema_entry *e = NULL;
        const char *why = NULL;
        size_t hdr = 0;
        int r;

        if (!a || !ev || (expected != MCD_AVRO_RELATIONSHIP_EVENT && expected != MCD_AVRO_SUBSCRIPTION_EVENT))
                return -EINVAL;
        r = decode_planned(a, expected, buf, len, &e, &hdr, &tmp, err);
        if (r > 0) {            /* checked already: read by the general path */
                r = decode_envelope(a, expected, e, (const unsigned char *)buf + hdr, len - hdr, &d, err);
                if (r == 0)
                        r = event_from_value(&d, expected, &tmp, err);
        }
        if (r == 0 && mcd_event_validate(&tmp, &why) < 0)
                r = mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT, "The %s is invalid: %s.", mcd_event_type_name(tmp.type),
                                  why ? why : "a required field is missing");
        if (r < 0) {
                mcd_event_clear(&tmp);
                return r;
        }
        *ev = tmp;
        return 0;
}

static int outcome_payload_from_value(struct mcd_avro_fields *g, struct mcd_outcome *o) {
        int r = 0;

        switch (o->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                if ((r = GET_ENUM(g, "from_state", mcd_customer_state_from_name, o->from_state)) < 0)
                        return r;
                return GET_ENUM(g, "to_state", mcd_customer_state_from_name, o->to_state);
        case MCD_OUT_RESALE_REJECTED:
                return mcd_avro_get_string(g, "reason", false, &o->reason);
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                if ((r = GET_ENUM(g, "billing", mcd_billing_from_name, o->billing)) < 0)
                        return r;
                return GET_ENUM(g, "channel", mcd_channel_from_name, o->channel);
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                if ((r = GET_ENUM(g, "billing", mcd_billing_from_name, o->billing)) < 0 ||
                    (r = GET_ENUM(g, "channel", mcd_channel_from_name, o->channel)) < 0)
                        return r;
                return GET_ENUM(g, "next_action", mcd_next_action_from_name, o->next_action);
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                if ((r = mcd_avro_get_time(g, "term_end", &o->term_end)) < 0)
                        return r;
                return GET_ENUM(g, "channel", mcd_channel_from_name, o->channel);
        case MCD_OUT_SWITCH_ALLOWED:
                return GET_ENUM(g, "reason", mcd_switch_reason_from_name, o->switch_reason);
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                if ((r = mcd_avro_get_string(g, "csp_subscription_id", false, &o->csp_subscription_id)) < 0 ||
                    (r = GET_ENUM(g, "legacy_channel", mcd_channel_from_name, o->channel)) < 0)
                        return r;
                return mcd_avro_get_bool(g, "coexists", &o->coexists);
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                return mcd_avro_get_string(g, "csp_subscription_id", true, &o->csp_subscription_id);
        case MCD_OUT_TRANSITION_REJECTED:
                if ((r = mcd_avro_get_string(g, "reason", false, &o->reason)) < 0)
                        return r;
                return mcd_avro_get_string(g, "rejected_event_type", false, &o->rejected_event_type);
        default:
                return -EINVAL;
        }
}

static int outcome_from_value(struct decoded *d, struct mcd_outcome *o, struct mcd_avro_error *err) {
        struct mcd_avro_fields env = {
                .obj = d->env, .reader_def = d->env_def, .record = mcd_avro_kind_names[MCD_AVRO_OUTCOME], .err = err
        };
        struct mcd_avro_fields pay = { .obj = d->payload, .reader_def = d->payload_def, .err = err };
        int t = mcd_outcome_type_from_name(mcd_avro_short_name(d->type)), r;

        if (t < 0)
                return mcd_avro_fail(err, MCD_DLQ_INVALID_EVENT,
                                     "The MultichannelOutcome carries the unknown type %.60s.", d->type);
        o->type = (enum mcd_outcome_type)t;
        pay.record = mcd_outcome_type_name(o->type);
        if ((r = mcd_avro_get_string(&env, "event_id", false, &o->event_id)) < 0 ||
            (r = mcd_avro_get_string(&env, "caused_by", false, &o->caused_by)) < 0 ||
            (r = mcd_avro_get_string(&env, "customer_id", false, &o->customer_id)) < 0 ||
            (r = GET_ENUM(&env, "cloud", mcd_cloud_from_name, o->cloud)) < 0 ||
            (r = mcd_avro_get_time(&env, "occurred_at", &o->occurred_at)) < 0 ||
            (r = mcd_avro_get_string(&env, "partner_id", true, &o->partner_id)) < 0 ||
            (r = mcd_avro_get_string(&env, "subscription_id", true, &o->subscription_id)) < 0 ||
            (r = GET_ENUM(&env, "customer_state", mcd_customer_state_from_name, o->customer_state)) < 0 ||
            (r = mcd_avro_get_string(&env, "message", false, &o->message)) < 0)
                return r;
        return outcome_payload_from_value(&pay, o);
}

int mcd_avro_decode_outcome(struct mcd_avro *a, const void *buf, size_t len, struct mcd_outcome *o,
                            struct mcd_avro_error *err) {
        struct decoded d = { 0 };
        struct mcd_outcome tmp = { 0 };
        struct schema_entry *e = NULL;
        size_t hdr = 0;
        int r;

        if (!a || !o)
                return -EINVAL;
        r = check_message(a, MCD_AVRO_OUTCOME, buf, len, &e, &hdr, err);
        if (r == 0)
                r = decode_envelope(a, MCD_AVRO_OUTCOME, e, (const unsigned char *)buf + hdr, len - hdr, &d, err);
        if (r == 0)
                r = outcome_from_value(&d, &tmp, err);
        if (r < 0) {
                mcd_outcome_clear(&tmp);
                return r;
        }
        *o = tmp;
        return 0;
}
