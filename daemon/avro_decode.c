/* avro_decode.c -- single-object encoded Avro to events and outcomes.
 *
 * A message's header names its writer schema; the body is walked (checked)
 * with it, read by libavro-c and turned into JSON; the reader schema's
 * defaults fill the fields the writer lacks ([Avro schema resolution]); and
 * the JSON is mapped onto the model by field name, so that fields may be
 * added, removed or reordered between versions.  libavro-c's resolved reader
 * is not used: it ignores defaults and crashes when the writer lacks a
 * defaulted field.  Every failure is a dead-letter code and one sentence. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"

/* ------------------------------------------------------------ errors -- */

static int fail(struct mcd_avro_error *err, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(struct mcd_avro_error *err, const char *code, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return -EBADMSG;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* ------------------------------------------------------- decoding -- */

/* Checks the header, finds the writer schema, checks the body and decodes it
 * into JSON.  On success *out is the envelope as JSON. */
static int decode_json(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                       json_t **out, struct mcd_avro_error *err) {
        const unsigned char *p = buf;
        const struct schema_entry *e;
        struct walk w;
        avro_reader_t reader;
        avro_value_t v;
        uint64_t fp = 0;
        int r;

        if (!p || len < SOE_HEADER_SIZE)
                return fail(err, MCD_DLQ_BAD_MAGIC,
                            "The message is %zu bytes long, shorter than the 10-byte Avro single-object header.",
                            len);
        if (p[0] != SOE_MAGIC0 || p[1] != SOE_MAGIC1)
                return fail(err, MCD_DLQ_BAD_MAGIC,
                            "The message starts with 0x%02X 0x%02X, not the Avro single-object marker 0xC3 0x01.",
                            p[0], p[1]);
        for (int i = 0; i < 8; i++)
                fp |= (uint64_t)p[2 + i] << (8 * i);
        e = mcd_avro_find_entry(a, fp);
        if (!e)
                return fail(err, MCD_DLQ_UNKNOWN_SCHEMA,
                            "The writer schema fingerprint 0x%016llx is not a schema this daemon knows.",
                            (unsigned long long)fp);
        if (e->kind != expected)
                return fail(err, MCD_DLQ_WRONG_TOPIC, "The message is a %s, but this topic carries %s values.",
                            mcd_avro_kind_names[e->kind], mcd_avro_kind_names[expected]);

        w = (struct walk){ .p = p + SOE_HEADER_SIZE, .end = p + len, .items_left = len + MAX_ITEMS_SLACK };
        if (mcd_avro_walk_value(&w, e->schema, 0) < 0)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %s.", w.why);
        if (w.p != w.end)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %zu byte%s follow%s the value.",
                            (size_t)(w.end - w.p), w.end - w.p == 1 ? "" : "s", w.end - w.p == 1 ? "s" : "");

        if (avro_generic_value_new(e->iface, &v) != 0)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be decoded: out of memory.");
        reader = avro_reader_memory((const char *)p + SOE_HEADER_SIZE, (int64_t)(len - SOE_HEADER_SIZE));
        if (!reader)
                r = fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be decoded: out of memory.");
        else if (avro_value_read(reader, &v) != 0)
                r = fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %s", avro_strerror());
        else if (!(*out = mcd_avro_value_to_json(&v, 0)))
                r = fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be converted: out of memory.");
        else
                r = 0;
        if (reader)
                avro_reader_free(reader);
        avro_value_decref(&v);
        return r;
}

/* Splits {"RecordName": {...}} into its name and record. */
static int split_payload(json_t *env, const char *envelope, const char **name, json_t **payload,
                         struct mcd_avro_error *err) {
        json_t *p = json_object_get(env, "payload");

        if (!p)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The %s has no payload field.", envelope);
        if (!json_is_object(p) || json_object_size(p) != 1 || !json_is_object(json_object_iter_value(json_object_iter(p))))
                return fail(err, MCD_DLQ_INVALID_EVENT, "The payload of the %s is not a record.", envelope);
        *name = json_object_iter_key(json_object_iter(p));
        *payload = json_object_iter_value(json_object_iter(p));
        return 0;
}

/* The reader's record definition of a payload record, by unqualified name. */
static json_t *reader_payload_def(const struct schema_entry *reader, const char *name) {
        const char *key;
        json_t *def;

        json_object_foreach(reader->records, key, def)
                if (strcmp(mcd_avro_short_name(key), mcd_avro_short_name(name)) == 0)
                        return def;
        return NULL;
}

/* Fills the fields the writer lacks from the reader's defaults ([Avro schema
 * resolution]).  Fields without a default stay missing: the getters below
 * report them. */
static int fill_defaults(json_t *obj, json_t *reader_def) {
        size_t i;
        json_t *f;

        json_array_foreach(json_object_get(reader_def, "fields"), i, f) {
                const char *name = json_string_value(json_object_get(f, "name"));
                json_t *def = json_object_get(f, "default");

                if (name && def && !json_object_get(obj, name) && json_object_set(obj, name, def) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Typed field getters: each reports a missing or ill-typed field as an
 * INVALID_EVENT naming the field and its record. */
struct getter {
        json_t *obj;
        const char *record;
        struct mcd_avro_error *err;
};

static json_t *get_field(struct getter *g, const char *name) {
        json_t *j = json_object_get(g->obj, name);

        if (!j)
                fail(g->err, MCD_DLQ_INVALID_EVENT,
                     "Field %s of %s is missing from the writer schema and has no default.", name, g->record);
        return j;
}

static int type_error(struct getter *g, const char *name, const char *want) {
        return fail(g->err, MCD_DLQ_INVALID_EVENT, "Field %s of %s is not %s.", name, g->record, want);
}

/* A string, checked for embedded NUL bytes (the model's strings are C
 * strings), copied to *dst. */
/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF):
 * Avro strings are UTF-8, and every string the daemon keeps must survive
 * JSON (state in Redis, the changelog, tail). */
static bool valid_utf8(const unsigned char *s, size_t n) {
        size_t i = 0;

        while (i < n) {
                unsigned c = s[i], len, cp;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        len = 2, cp = c & 0x1F;
                else if (c >= 0xE0 && c <= 0xEF)
                        len = 3, cp = c & 0x0F;
                else if (c >= 0xF0 && c <= 0xF4)
                        len = 4, cp = c & 0x07;
                else
                        return false;
                if (n - i < len)
                        return false;
                for (unsigned k = 1; k < len; k++) {
                        if ((s[i + k] & 0xC0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3F);
                }
                if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
                        return false;
                i += len;
        }
        return true;
}

static int copy_string(struct getter *g, const char *name, json_t *j, char **dst) {
        if (strlen(json_string_value(j)) != json_string_length(j))
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Field %s of %s contains a NUL byte.", name, g->record);
        if (!valid_utf8((const unsigned char *)json_string_value(j), json_string_length(j)))
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Field %s of %s is not valid UTF-8.", name, g->record);
        *dst = strdup(json_string_value(j));
        if (!*dst)
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding field %s of %s.", name, g->record);
        return 0;
}

static int get_string(struct getter *g, const char *name, bool nullable, char **dst) {
        json_t *j = get_field(g, name);

        if (!j)
                return -EBADMSG;
        if (json_is_null(j) && nullable) {
                *dst = NULL;
                return 0;
        }
        if (!json_is_string(j))
                return type_error(g, name, nullable ? "a string or null" : "a string");
        return copy_string(g, name, j, dst);
}

static int get_long(struct getter *g, const char *name, bool nullable, bool *has, int64_t *dst) {
        json_t *j = get_field(g, name);

        if (!j)
                return -EBADMSG;
        if (json_is_null(j) && nullable) {
                *has = false;
                *dst = 0;
                return 0;
        }
        if (!json_is_integer(j))
                return type_error(g, name, nullable ? "a long or null" : "a long");
        *has = true;
        *dst = json_integer_value(j);
        return 0;
}

static int get_time(struct getter *g, const char *name, mcd_time_t *dst) {
        bool has;

        return get_long(g, name, false, &has, dst);
}

static int get_bool(struct getter *g, const char *name, bool *dst) {
        json_t *j = get_field(g, name);

        if (!j)
                return -EBADMSG;
        if (!json_is_boolean(j))
                return type_error(g, name, "a boolean");
        *dst = json_is_true(j);
        return 0;
}

/* An enum field, by symbol name (so writer and reader symbol orders may
 * differ).  *dst is the model's value. */
static int get_enum(struct getter *g, const char *name, int (*from_name)(const char *), int *dst) {
        json_t *j = get_field(g, name);
        int v;

        if (!j)
                return -EBADMSG;
        if (!json_is_string(j))
                return type_error(g, name, "an enum symbol");
        v = from_name(json_string_value(j));
        if (v < 0)
                return fail(g->err, MCD_DLQ_INVALID_EVENT, "Field %s of %s has the unknown symbol %.60s.", name,
                            g->record, json_string_value(j));
        *dst = v;
        return 0;
}

static int get_string_array(struct getter *g, const char *name, char ***dst, size_t *n) {
        json_t *j = get_field(g, name), *x;
        size_t i;
        int r;

        if (!j)
                return -EBADMSG;
        if (!json_is_array(j))
                return type_error(g, name, "an array of strings");
        *n = 0;
        *dst = NULL;
        if (json_array_size(j) == 0)
                return 0;
        *dst = calloc(json_array_size(j), sizeof(**dst));
        if (!*dst)
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding field %s of %s.", name, g->record);
        json_array_foreach(j, i, x) {
                if (!json_is_string(x))
                        return type_error(g, name, "an array of strings");
                if ((r = copy_string(g, name, x, &(*dst)[i])) < 0)
                        return r;
                (*n)++;
        }
        return 0;
}

#define GET_ENUM(g, name, from_name, dst)                                                         \
        ({                                                                                        \
                int v_ = 0, r_ = get_enum((g), (name), (from_name), &v_);                         \
                if (r_ == 0)                                                                      \
                        (dst) = v_;                                                               \
                r_;                                                                               \
        })

static int event_payload_from_json(struct getter *g, struct mcd_event *ev) {
        int r = 0;

        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                if ((r = get_string(g, "partner_id", false, &ev->partner_id)) < 0 ||
                    (r = get_string(g, "indirect_reseller_id", true, &ev->indirect_reseller_id)) < 0)
                        return r;
                return get_bool(g, "customer_is_csp_partner", &ev->customer_is_csp_partner);
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                return get_string(g, "partner_id", false, &ev->partner_id);
        case MCD_EV_RELATIONSHIP_REMOVED:
                if ((r = get_string(g, "partner_id", false, &ev->partner_id)) < 0)
                        return r;
                return get_string(g, "reason", true, &ev->reason);
        case MCD_EV_SUBSCRIPTION_REPORTED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = get_string(g, "offer_name", false, &ev->offer_name)) < 0 ||
                    (r = GET_ENUM(g, "billing", mcd_billing_from_name, ev->billing)) < 0 ||
                    (r = GET_ENUM(g, "channel", mcd_channel_from_name, ev->channel)) < 0 ||
                    (r = get_string(g, "seller_partner_id", true, &ev->seller_partner_id)) < 0)
                        return r;
                return get_long(g, "term_end", true, &ev->has_term_end, &ev->term_end);
        case MCD_EV_SWITCH_REQUESTED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0)
                        return r;
                return get_string(g, "target_partner_id", false, &ev->target_partner_id);
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = get_string(g, "csp_subscription_id", false, &ev->csp_subscription_id)) < 0)
                        return r;
                return get_string(g, "partner_id", false, &ev->partner_id);
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = GET_ENUM(g, "scope", mcd_scope_from_name, ev->scope)) < 0)
                        return r;
                return get_string_array(g, "services", &ev->services, &ev->n_services);
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                return get_string(g, "subscription_id", false, &ev->subscription_id);
        default:
                return -EINVAL;
        }
}

/* The envelope and payload as JSON, with the reader's defaults filled in. */
struct decoded {
        json_t *env;
        json_t *payload;                /* borrowed from env */
        const char *type;               /* payload record name, borrowed */
};

static int decode_envelope(struct mcd_avro *a, enum mcd_avro_kind kind, const void *buf, size_t len,
                           struct decoded *d, struct mcd_avro_error *err) {
        const struct schema_entry *reader = &a->v[a->reader[kind]];
        json_t *pdef;
        int r;

        if ((r = decode_json(a, kind, buf, len, &d->env, err)) < 0)
                return r;
        if ((r = split_payload(d->env, mcd_avro_kind_names[kind], &d->type, &d->payload, err)) < 0)
                return r;
        pdef = reader_payload_def(reader, d->type);
        if (!pdef)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The %s carries the unknown payload record %.60s.",
                            mcd_avro_kind_names[kind], d->type);
        if (fill_defaults(d->env, reader->root) < 0 || fill_defaults(d->payload, pdef) < 0)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding a %s.", mcd_avro_kind_names[kind]);
        return 0;
}

static int event_from_json(struct decoded *d, enum mcd_avro_kind kind, struct mcd_event *ev,
                           struct mcd_avro_error *err) {
        struct getter env = { .obj = d->env, .record = mcd_avro_kind_names[kind], .err = err };
        struct getter pay = { .obj = d->payload, .err = err };
        int t = mcd_event_type_from_name(mcd_avro_short_name(d->type)), r;

        if (t < 0)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The %s carries the unknown event type %.60s.",
                            mcd_avro_kind_names[kind], d->type);
        if (mcd_event_is_relationship((enum mcd_event_type)t) != (kind == MCD_AVRO_RELATIONSHIP_EVENT))
                return fail(err, MCD_DLQ_INVALID_EVENT, "A %s cannot carry a %s payload.", mcd_avro_kind_names[kind],
                            d->type);
        ev->type = (enum mcd_event_type)t;
        pay.record = mcd_event_type_name(ev->type);
        if ((r = get_string(&env, "event_id", false, &ev->event_id)) < 0 ||
            (r = get_time(&env, "occurred_at", &ev->occurred_at)) < 0 ||
            (r = get_string(&env, "customer_id", false, &ev->customer_id)) < 0 ||
            (r = GET_ENUM(&env, "cloud", mcd_cloud_from_name, ev->cloud)) < 0)
                return r;
        return event_payload_from_json(&pay, ev);
}

int mcd_avro_decode_event(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                          struct mcd_event *ev, struct mcd_avro_error *err) {
        struct decoded d = { 0 };
        struct mcd_event tmp = { 0 };
        const char *why = NULL;
        int r;

        if (!a || !ev || (expected != MCD_AVRO_RELATIONSHIP_EVENT && expected != MCD_AVRO_SUBSCRIPTION_EVENT))
                return -EINVAL;
        r = decode_envelope(a, expected, buf, len, &d, err);
        if (r == 0)
                r = event_from_json(&d, expected, &tmp, err);
        if (r == 0 && mcd_event_validate(&tmp, &why) < 0)
                r = fail(err, MCD_DLQ_INVALID_EVENT, "The %s is invalid: %s.", mcd_event_type_name(tmp.type),
                         why ? why : "a required field is missing");
        json_decref(d.env);
        if (r < 0) {
                mcd_event_clear(&tmp);
                return r;
        }
        *ev = tmp;
        return 0;
}

static int outcome_payload_from_json(struct getter *g, struct mcd_outcome *o) {
        int r = 0;

        switch (o->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                if ((r = GET_ENUM(g, "from_state", mcd_customer_state_from_name, o->from_state)) < 0)
                        return r;
                return GET_ENUM(g, "to_state", mcd_customer_state_from_name, o->to_state);
        case MCD_OUT_RESALE_REJECTED:
                return get_string(g, "reason", false, &o->reason);
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
                if ((r = get_time(g, "term_end", &o->term_end)) < 0)
                        return r;
                return GET_ENUM(g, "channel", mcd_channel_from_name, o->channel);
        case MCD_OUT_SWITCH_ALLOWED:
                return GET_ENUM(g, "reason", mcd_switch_reason_from_name, o->switch_reason);
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                if ((r = get_string(g, "csp_subscription_id", false, &o->csp_subscription_id)) < 0 ||
                    (r = GET_ENUM(g, "legacy_channel", mcd_channel_from_name, o->channel)) < 0)
                        return r;
                return get_bool(g, "coexists", &o->coexists);
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                return get_string(g, "csp_subscription_id", true, &o->csp_subscription_id);
        case MCD_OUT_TRANSITION_REJECTED:
                if ((r = get_string(g, "reason", false, &o->reason)) < 0)
                        return r;
                return get_string(g, "rejected_event_type", false, &o->rejected_event_type);
        default:
                return -EINVAL;
        }
}

static int outcome_from_json(struct decoded *d, struct mcd_outcome *o, struct mcd_avro_error *err) {
        struct getter env = { .obj = d->env, .record = mcd_avro_kind_names[MCD_AVRO_OUTCOME], .err = err };
        struct getter pay = { .obj = d->payload, .err = err };
        int t = mcd_outcome_type_from_name(mcd_avro_short_name(d->type)), r;

        if (t < 0)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The MultichannelOutcome carries the unknown type %.60s.",
                            d->type);
        o->type = (enum mcd_outcome_type)t;
        pay.record = mcd_outcome_type_name(o->type);
        if ((r = get_string(&env, "event_id", false, &o->event_id)) < 0 ||
            (r = get_string(&env, "caused_by", false, &o->caused_by)) < 0 ||
            (r = get_string(&env, "customer_id", false, &o->customer_id)) < 0 ||
            (r = GET_ENUM(&env, "cloud", mcd_cloud_from_name, o->cloud)) < 0 ||
            (r = get_time(&env, "occurred_at", &o->occurred_at)) < 0 ||
            (r = get_string(&env, "partner_id", true, &o->partner_id)) < 0 ||
            (r = get_string(&env, "subscription_id", true, &o->subscription_id)) < 0 ||
            (r = GET_ENUM(&env, "customer_state", mcd_customer_state_from_name, o->customer_state)) < 0 ||
            (r = get_string(&env, "message", false, &o->message)) < 0)
                return r;
        return outcome_payload_from_json(&pay, o);
}

int mcd_avro_decode_outcome(struct mcd_avro *a, const void *buf, size_t len, struct mcd_outcome *o,
                            struct mcd_avro_error *err) {
        struct decoded d = { 0 };
        struct mcd_outcome tmp = { 0 };
        int r;

        if (!a || !o)
                return -EINVAL;
        r = decode_envelope(a, MCD_AVRO_OUTCOME, buf, len, &d, err);
        if (r == 0)
                r = outcome_from_json(&d, &tmp, err);
        json_decref(d.env);
        if (r < 0) {
                mcd_outcome_clear(&tmp);
                return r;
        }
        *o = tmp;
        return 0;
}
