/* avro_encode.c -- events to single-object encoded Avro, and the envelope.
 *
 * Events go model -> JSON -> generic value of the writer schema (any writer,
 * so producers and tests can write older or newer versions; the writer's
 * defaults fill the fields the model lacks).  Outcomes are avro_outcome.c's.
 * mcd_avro_header_write() is the one writer of the envelope's header. */
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

size_t mcd_avro_header_write(const struct schema_entry *e, const uint32_t *confluent_id, unsigned char *out) {
        if (confluent_id) {
                out[0] = CONFLUENT_MAGIC;
                for (int i = 0; i < 4; i++)
                        out[1 + i] = (unsigned char)(*confluent_id >> (8 * (3 - i)));
                return CONFLUENT_HEADER_SIZE;
        }
        out[0] = SOE_MAGIC0;
        out[1] = SOE_MAGIC1;
        for (int i = 0; i < 8; i++)
                out[2 + i] = (unsigned char)(e->fp >> (8 * i));
        return SOE_HEADER_SIZE;
}

/* Writes value v (of schema entry e) as a single-object encoded buffer. */
int mcd_avro_frame_write(const struct schema_entry *e, const uint32_t *confluent_id, avro_value_t *v, void **buf,
                         size_t *len) {
        avro_writer_t w = NULL;
        unsigned char *out = NULL;
        size_t hdr, size = 0;
        int r = -ENOMEM;

        if (avro_value_sizeof(v, &size) != 0)
                goto done;
        out = malloc(SOE_HEADER_SIZE + size);
        if (!out)
                goto done;
        hdr = mcd_avro_header_write(e, confluent_id, out);
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
