/* avro_encode.c -- events and outcomes to single-object encoded Avro.
 *
 * Events go model -> JSON -> generic value of the writer schema (any writer,
 * so producers and tests can write older or newer versions; the writer's
 * defaults fill the fields the model lacks).  Outcomes, one for every outcome
 * the batch path makes, are written straight into a value of the outcome
 * schema.  Both leave through mcd_avro_frame_write(), the one writer of the
 * single-object envelope. */
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

/* Writes value v (of schema entry e) as a single-object encoded buffer. */
int mcd_avro_frame_write(const struct schema_entry *e, const uint32_t *confluent_id, avro_value_t *v, void **buf,
                         size_t *len) {
        size_t hdr = confluent_id ? CONFLUENT_HEADER_SIZE : SOE_HEADER_SIZE;
        avro_writer_t w = NULL;
        unsigned char *out = NULL;
        size_t size = 0;
        int r = -ENOMEM;

        if (avro_value_sizeof(v, &size) != 0)
                goto done;
        out = malloc(hdr + size);
        if (!out)
                goto done;
        if (confluent_id) {
                out[0] = CONFLUENT_MAGIC;
                for (int i = 0; i < 4; i++)
                        out[1 + i] = (unsigned char)(*confluent_id >> (8 * (3 - i)));
        } else {
                out[0] = SOE_MAGIC0;
                out[1] = SOE_MAGIC1;
                for (int i = 0; i < 8; i++)
                        out[2 + i] = (unsigned char)(e->fp >> (8 * i));
        }
        w = avro_writer_memory((const char *)out + hdr, (int64_t)size);
        if (!w || avro_value_write(w, v) != 0) {
                r = -EIO;
                goto done;
        }
        *buf = out;
        *len = hdr + size;
        out = NULL;
        r = 0;
done:
        if (w)
                avro_writer_free(w);
        free(out);
        return r;
}

/* Encodes JSON value j (a record) with schema entry e into a buffer framed
 * by mcd_avro_frame_write (confluent_id NULL: single-object encoding). */
static int encode_json(const struct schema_entry *e, const uint32_t *confluent_id, json_t *j, void **buf,
                       size_t *len) {
        avro_value_t v;
        int r;

        if (avro_generic_value_new(e->iface, &v) != 0)
                return -ENOMEM;
        r = mcd_avro_value_from_json(e->records, j, &v);
        if (r == 0)
                r = mcd_avro_frame_write(e, confluent_id, &v, buf, len);
        avro_value_decref(&v);
        return r;
}

/* ------------------------------------------------- model -> JSON -- */

static int put(json_t *obj, const char *key, json_t *val) {
        return val && json_object_set_new(obj, key, val) == 0 ? 0 : -ENOMEM;
}

static json_t *opt_string(const char *s) {
        return s ? json_string_nocheck(s) : json_null();
}

static json_t *req_string(const char *s) {
        return json_string_nocheck(s ? s : "");
}

static json_t *enum_symbol(const char *s) {
        return s ? json_string(s) : NULL;
}

static int event_payload_to_json(const struct mcd_event *ev, json_t *p) {
        int r = 0;

        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                r |= put(p, "partner_id", req_string(ev->partner_id));
                r |= put(p, "indirect_reseller_id", opt_string(ev->indirect_reseller_id));
                r |= put(p, "customer_is_csp_partner", json_boolean(ev->customer_is_csp_partner));
                break;
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                r |= put(p, "partner_id", req_string(ev->partner_id));
                break;
        case MCD_EV_RELATIONSHIP_REMOVED:
                r |= put(p, "partner_id", req_string(ev->partner_id));
                r |= put(p, "reason", opt_string(ev->reason));
                break;
        case MCD_EV_SUBSCRIPTION_REPORTED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "offer_name", req_string(ev->offer_name));
                r |= put(p, "billing", enum_symbol(mcd_billing_name(ev->billing)));
                r |= put(p, "channel", enum_symbol(mcd_channel_name(ev->channel)));
                r |= put(p, "seller_partner_id", opt_string(ev->seller_partner_id));
                r |= put(p, "term_end", ev->has_term_end ? json_integer(ev->term_end) : json_null());
                break;
        case MCD_EV_SWITCH_REQUESTED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "target_partner_id", req_string(ev->target_partner_id));
                break;
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "csp_subscription_id", req_string(ev->csp_subscription_id));
                r |= put(p, "partner_id", req_string(ev->partner_id));
                break;
        case MCD_EV_SUBSCRIPTION_CANCELLED: {
                json_t *services = json_array();

                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "scope", enum_symbol(mcd_scope_name(ev->scope)));
                for (size_t i = 0; services && i < ev->n_services; i++)
                        if (json_array_append_new(services, req_string(ev->services[i])) < 0)
                                r = -ENOMEM;
                r |= put(p, "services", services);
                break;
        }
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                break;
        default:
                return -EINVAL;
        }
        return r ? -EINVAL : 0;         /* an enum out of range, or no memory */
}

/* {"RecordName": payload} as the value of the envelope's payload field. */
static int put_payload(json_t *obj, const char *type_name, json_t *payload) {
        json_t *wrap;

        if (!payload || !type_name) {
                json_decref(payload);
                return -EINVAL;
        }
        wrap = json_object();
        if (!wrap || json_object_set_new(wrap, type_name, payload) < 0) {
                json_decref(wrap);
                return -ENOMEM;
        }
        return put(obj, "payload", wrap);
}

static int event_to_json(const struct mcd_event *ev, json_t **out) {
        json_t *obj = json_object(), *p = json_object();
        int r = 0;

        if (!obj || !p) {
                r = -ENOMEM;
                goto fail;
        }
        r |= put(obj, "event_id", req_string(ev->event_id));
        r |= put(obj, "occurred_at", json_integer(ev->occurred_at));
        r |= put(obj, "customer_id", req_string(ev->customer_id));
        r |= put(obj, "cloud", enum_symbol(mcd_cloud_name(ev->cloud)));
        if (r) {
                r = -EINVAL;
                goto fail;
        }
        if ((r = event_payload_to_json(ev, p)) < 0)
                goto fail;
        r = put_payload(obj, mcd_event_type_name(ev->type), p);
        p = NULL;
        if (r < 0)
                goto fail;
        *out = obj;
        return 0;
fail:
        json_decref(p);
        json_decref(obj);
        return r;
}

/* ------------------------------------------- outcome -> Avro value -- */

/* Outcomes are written straight into an Avro value of the outcome schema,
 * with no JSON in between: one is encoded for every outcome the batch path
 * makes.  Every field is set, so no default is needed.  Errors are -EINVAL
 * (a field missing from the schema, an enum symbol it does not have). */

/* The record's own fields, each looked up by name in a payload record and
 * by the index kept in struct mcd_avro in the outcome record (outcome_of):
 * the lookup by name was a twentieth of the daemon's CPU. */
static int field_of(avro_value_t *rec, const char *name, avro_value_t *f) {
        return avro_value_get_by_name(rec, name, f, NULL) == 0 ? 0 : -EINVAL;
}

static int put_string(avro_value_t *f, const char *s) {
        return avro_value_set_string(f, s ? s : "") == 0 ? 0 : -ENOMEM;
}

static int set_string(avro_value_t *rec, const char *name, const char *s) {
        avro_value_t f;
        return field_of(rec, name, &f) == 0 ? put_string(&f, s) : -EINVAL;
}

static int set_long(avro_value_t *rec, const char *name, int64_t x) {
        avro_value_t f;
        return field_of(rec, name, &f) == 0 && avro_value_set_long(&f, x) == 0 ? 0 : -EINVAL;
}

static int set_boolean(avro_value_t *rec, const char *name, bool x) {
        avro_value_t f;
        return field_of(rec, name, &f) == 0 && avro_value_set_boolean(&f, x) == 0 ? 0 : -EINVAL;
}

static int put_enum(avro_value_t *f, const char *symbol) {
        int i;

        if (!symbol)
                return -EINVAL;
        i = avro_schema_enum_get_by_name(mcd_avro_deref(avro_value_get_schema(f)), symbol);
        return i >= 0 && avro_value_set_enum(f, i) == 0 ? 0 : -EINVAL;
}

static int set_enum(avro_value_t *rec, const char *name, const char *symbol) {
        avro_value_t f;
        return field_of(rec, name, &f) == 0 ? put_enum(&f, symbol) : -EINVAL;
}

/* The branch of union u whose type is t (the first, as json_fits picks). */
static int branch_of_type(avro_value_t *u, avro_type_t t, avro_value_t *branch) {
        avro_schema_t us = mcd_avro_deref(avro_value_get_schema(u));
        size_t n = avro_schema_union_size(us);

        for (size_t i = 0; i < n; i++)
                if (avro_typeof(mcd_avro_deref(avro_schema_union_branch(us, (int)i))) == t)
                        return avro_value_set_branch(u, (int)i, branch) == 0 ? 0 : -EINVAL;
        return -EINVAL;
}

/* A ["null", "string"] union u: null when s is NULL. */
static int put_optional_string(avro_value_t *u, const char *s) {
        avro_value_t b;

        if (branch_of_type(u, s ? AVRO_STRING : AVRO_NULL, &b) < 0)
                return -EINVAL;
        if (!s)
                return avro_value_set_null(&b) == 0 ? 0 : -EINVAL;
        return avro_value_set_string(&b, s) == 0 ? 0 : -ENOMEM;
}

static int set_optional_string(avro_value_t *rec, const char *name, const char *s) {
        avro_value_t u;
        return field_of(rec, name, &u) == 0 ? put_optional_string(&u, s) : -EINVAL;
}

/* Selects the record branch named `name` of union u. */
static int put_record_branch(avro_value_t *u, const char *name, avro_value_t *branch) {
        avro_schema_t us;
        size_t n;

        if (!name)
                return -EINVAL;
        us = mcd_avro_deref(avro_value_get_schema(u));
        n = avro_schema_union_size(us);
        for (size_t i = 0; i < n; i++) {
                avro_schema_t bs = mcd_avro_deref(avro_schema_union_branch(us, (int)i));
                if (avro_typeof(bs) == AVRO_RECORD && strcmp(avro_schema_name(bs), name) == 0)
                        return avro_value_set_branch(u, (int)i, branch) == 0 ? 0 : -EINVAL;
        }
        return -EINVAL;
}

static int outcome_payload_to_value(const struct mcd_outcome *o, avro_value_t *p) {
        int r = 0;

        switch (o->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                r |= set_enum(p, "from_state", mcd_customer_state_name(o->from_state));
                r |= set_enum(p, "to_state", mcd_customer_state_name(o->to_state));
                break;
        case MCD_OUT_RESALE_REJECTED:
                r |= set_string(p, "reason", o->reason);
                break;
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                r |= set_enum(p, "billing", mcd_billing_name(o->billing));
                r |= set_enum(p, "channel", mcd_channel_name(o->channel));
                break;
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                r |= set_enum(p, "billing", mcd_billing_name(o->billing));
                r |= set_enum(p, "channel", mcd_channel_name(o->channel));
                r |= set_enum(p, "next_action", mcd_next_action_name(o->next_action));
                break;
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                r |= set_long(p, "term_end", o->term_end);
                r |= set_enum(p, "channel", mcd_channel_name(o->channel));
                break;
        case MCD_OUT_SWITCH_ALLOWED:
                r |= set_enum(p, "reason", mcd_switch_reason_name(o->switch_reason));
                break;
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                r |= set_string(p, "csp_subscription_id", o->csp_subscription_id);
                r |= set_enum(p, "legacy_channel", mcd_channel_name(o->channel));
                r |= set_boolean(p, "coexists", o->coexists);
                break;
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                r |= set_optional_string(p, "csp_subscription_id", o->csp_subscription_id);
                break;
        case MCD_OUT_TRANSITION_REJECTED:
                r |= set_string(p, "reason", o->reason);
                r |= set_string(p, "rejected_event_type", o->rejected_event_type);
                break;
        default:
                return -EINVAL;
        }
        return r ? -EINVAL : 0;
}

enum {
        OF_EVENT_ID, OF_CAUSED_BY, OF_CUSTOMER_ID, OF_CLOUD, OF_OCCURRED_AT,
        OF_PARTNER_ID, OF_SUBSCRIPTION_ID, OF_CUSTOMER_STATE, OF_MESSAGE, OF_PAYLOAD,
};
static const char *const outcome_fields[MCD_OUTCOME_FIELDS] = {
        [OF_EVENT_ID] = "event_id", [OF_CAUSED_BY] = "caused_by", [OF_CUSTOMER_ID] = "customer_id",
        [OF_CLOUD] = "cloud", [OF_OCCURRED_AT] = "occurred_at", [OF_PARTNER_ID] = "partner_id",
        [OF_SUBSCRIPTION_ID] = "subscription_id", [OF_CUSTOMER_STATE] = "customer_state",
        [OF_MESSAGE] = "message", [OF_PAYLOAD] = "payload",
};

/* Field k of the outcome record a->outcome. */
static avro_value_t outcome_of(struct mcd_avro *a, int k) {
        avro_value_t f = {0};

        avro_value_get_by_index(&a->outcome, (size_t)a->outcome_field[k], &f, NULL);
        return f;
}

static int outcome_to_value(struct mcd_avro *a, const struct mcd_outcome *o) {
        avro_value_t f[MCD_OUTCOME_FIELDS], payload;
        int r = 0;

        for (int k = 0; k < MCD_OUTCOME_FIELDS; k++)
                f[k] = outcome_of(a, k);
        r |= put_string(&f[OF_EVENT_ID], o->event_id);
        r |= put_string(&f[OF_CAUSED_BY], o->caused_by);
        r |= put_string(&f[OF_CUSTOMER_ID], o->customer_id);
        r |= put_enum(&f[OF_CLOUD], mcd_cloud_name(o->cloud));
        r |= avro_value_set_long(&f[OF_OCCURRED_AT], o->occurred_at) == 0 ? 0 : -EINVAL;
        r |= put_optional_string(&f[OF_PARTNER_ID], o->partner_id);
        r |= put_optional_string(&f[OF_SUBSCRIPTION_ID], o->subscription_id);
        r |= put_enum(&f[OF_CUSTOMER_STATE], mcd_customer_state_name(o->customer_state));
        r |= put_string(&f[OF_MESSAGE], o->message);
        if (r)
                return -EINVAL;
        if (put_record_branch(&f[OF_PAYLOAD], mcd_outcome_type_name(o->type), &payload) < 0)
                return -EINVAL;
        return outcome_payload_to_value(o, &payload);
}

/* a->outcome and a->outcome_field made for the outcome reader schema e, the
 * first time and whenever that schema changed.  Every field of the value
 * is set by each outcome encoded, so none keeps a value from the one
 * before.  0, -EINVAL (a field missing from the schema) or -ENOMEM. */
static int outcome_prepare(struct mcd_avro *a, const struct schema_entry *e) {
        if (a->outcome.iface && a->outcome_fp == e->fp)
                return 0;
        if (a->outcome.iface)
                avro_value_decref(&a->outcome);
        a->outcome = (avro_value_t){0};
        for (int k = 0; k < MCD_OUTCOME_FIELDS; k++) {
                int i = avro_schema_record_field_get_index(e->schema, outcome_fields[k]);
                if (i < 0)
                        return -EINVAL;
                a->outcome_field[k] = i;
        }
        if (avro_generic_value_new(e->iface, &a->outcome) != 0) {
                a->outcome = (avro_value_t){0};
                return -ENOMEM;
        }
        a->outcome_fp = e->fp;
        return 0;
}

int mcd_avro_encode_event(struct mcd_avro *a, const struct mcd_event *ev, void **buf, size_t *len) {
        enum mcd_avro_kind kind;
        json_t *j;
        int r;

        if (!a || !ev || (unsigned)ev->type >= MCD_EV__COUNT)
                return -EINVAL;
        kind = mcd_event_is_relationship(ev->type) ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;
        if ((r = event_to_json(ev, &j)) < 0)
                return r;
        r = encode_json(&a->v[a->reader[kind]], NULL, j, buf, len);
        json_decref(j);
        return r;
}

/* mcd_avro_encode_event_with, framed by mcd_avro_frame_write. */
static int encode_event_framed(struct mcd_avro *a, const char *writer_schema_json, const uint32_t *confluent_id,
                               const struct mcd_event *ev, void **buf, size_t *len) {
        struct schema_entry tmp, *e;
        uint64_t fp;
        json_t *j;
        int r;

        if (!a || !ev || !writer_schema_json)
                return -EINVAL;
        if ((r = mcd_avro_fingerprint(writer_schema_json, &fp)) < 0)
                return r;
        e = mcd_avro_find_entry(a, fp);
        if (!e) {
                if ((r = mcd_avro_entry_init(&tmp, writer_schema_json)) < 0)
                        return r;
                e = &tmp;
        }
        r = event_to_json(ev, &j);
        if (r == 0) {
                r = encode_json(e, confluent_id, j, buf, len);
                json_decref(j);
        }
        if (e == &tmp)
                mcd_avro_entry_clear(&tmp);
        return r;
}

int mcd_avro_encode_outcome(struct mcd_avro *a, const struct mcd_outcome *o, void **buf, size_t *len) {
        const struct schema_entry *e;
        int r;

        if (!a || !o)
                return -EINVAL;
        e = &a->v[a->reader[MCD_AVRO_OUTCOME]];
        if ((r = outcome_prepare(a, e)) < 0)
                return r;
        r = outcome_to_value(a, o);
        if (r == 0)
                r = mcd_avro_frame_write(e, a->outcome_confluent ? &a->outcome_id : NULL, &a->outcome, buf, len);
        return r;
}

int mcd_avro_encode_event_with(struct mcd_avro *a, const char *writer_schema_json,
                               const struct mcd_event *ev, void **buf, size_t *len) {
        return encode_event_framed(a, writer_schema_json, NULL, ev, buf, len);
}

int mcd_avro_encode_event_confluent(struct mcd_avro *a, const char *writer_schema_json, uint32_t id,
                                    const struct mcd_event *ev, void **buf, size_t *len) {
        enum mcd_avro_kind kind;

        if (!a || !ev || (unsigned)ev->type >= MCD_EV__COUNT)
                return -EINVAL;
        kind = mcd_event_is_relationship(ev->type) ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;
        return encode_event_framed(a, writer_schema_json ? writer_schema_json : mcd_avro_reader_schema(a, kind), &id,
                                   ev, buf, len);
}
