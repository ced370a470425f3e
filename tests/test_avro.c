/* test_avro.c -- the Avro codec: round trips, dead-letter codes, schema
 * evolution in both directions, and robustness against arbitrary bytes.
 *
 * Writer schemas for the evolution tests are derived from the shipped reader
 * schemas with jansson (a field added, removed, an enum reordered), registered
 * with the codec, and used to encode through mcd_avro_encode_event_with(). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/parallel.h"
#include "tests/samples.h"
#include "tests/schema_edit.h"
#include "tests/tap.h"

/* ------------------------------------------------------------ helpers -- */

static bool streq(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Name of the first field in which two events differ, or NULL. */
static const char *event_diff(const struct mcd_event *a, const struct mcd_event *b) {
        if (a->type != b->type)
                return "type";
        if (!streq(a->event_id, b->event_id))
                return "event_id";
        if (a->occurred_at != b->occurred_at)
                return "occurred_at";
        if (!streq(a->customer_id, b->customer_id))
                return "customer_id";
        if (a->cloud != b->cloud)
                return "cloud";
        if (!streq(a->partner_id, b->partner_id))
                return "partner_id";
        if (!streq(a->indirect_reseller_id, b->indirect_reseller_id))
                return "indirect_reseller_id";
        if (a->customer_is_csp_partner != b->customer_is_csp_partner)
                return "customer_is_csp_partner";
        if (!streq(a->reason, b->reason))
                return "reason";
        if (!streq(a->subscription_id, b->subscription_id))
                return "subscription_id";
        if (!streq(a->offer_name, b->offer_name))
                return "offer_name";
        if (a->billing != b->billing)
                return "billing";
        if (a->channel != b->channel)
                return "channel";
        if (!streq(a->seller_partner_id, b->seller_partner_id))
                return "seller_partner_id";
        if (a->has_term_end != b->has_term_end || (a->has_term_end && a->term_end != b->term_end))
                return "term_end";
        if (!streq(a->target_partner_id, b->target_partner_id))
                return "target_partner_id";
        if (!streq(a->csp_subscription_id, b->csp_subscription_id))
                return "csp_subscription_id";
        if (a->scope != b->scope)
                return "scope";
        if (a->n_services != b->n_services)
                return "services";
        for (size_t i = 0; i < a->n_services; i++)
                if (!streq(a->services[i], b->services[i]))
                        return "services";
        return NULL;
}

static const char *outcome_diff(const struct mcd_outcome *a, const struct mcd_outcome *b) {
        if (a->type != b->type)
                return "type";
        if (!streq(a->event_id, b->event_id))
                return "event_id";
        if (!streq(a->caused_by, b->caused_by))
                return "caused_by";
        if (!streq(a->customer_id, b->customer_id))
                return "customer_id";
        if (a->cloud != b->cloud)
                return "cloud";
        if (a->occurred_at != b->occurred_at)
                return "occurred_at";
        if (!streq(a->partner_id, b->partner_id))
                return "partner_id";
        if (!streq(a->subscription_id, b->subscription_id))
                return "subscription_id";
        if (a->customer_state != b->customer_state)
                return "customer_state";
        if (!streq(a->message, b->message))
                return "message";
        if (a->from_state != b->from_state || a->to_state != b->to_state)
                return "from_state/to_state";
        if (!streq(a->reason, b->reason))
                return "reason";
        if (a->billing != b->billing)
                return "billing";
        if (a->channel != b->channel)
                return "channel";
        if (a->next_action != b->next_action)
                return "next_action";
        if (a->term_end != b->term_end)
                return "term_end";
        if (a->switch_reason != b->switch_reason)
                return "switch_reason";
        if (!streq(a->csp_subscription_id, b->csp_subscription_id))
                return "csp_subscription_id";
        if (a->coexists != b->coexists)
                return "coexists";
        if (!streq(a->rejected_event_type, b->rejected_event_type))
                return "rejected_event_type";
        return NULL;
}

static enum mcd_avro_kind kind_of(enum mcd_event_type t) {
        return mcd_event_is_relationship(t) ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;
}

static uint64_t header_fp(const unsigned char *buf) {
        uint64_t fp = 0;

        for (int i = 0; i < 8; i++)
                fp |= (uint64_t)buf[2 + i] << (8 * i);
        return fp;
}

/* Decodes buf expecting failure with `code`; returns whether it did. */
static bool decode_fails(struct mcd_avro *a, enum mcd_avro_kind kind, const void *buf, size_t len,
                         const char *code, struct mcd_avro_error *err) {
        struct mcd_event ev = { 0 };
        int r;

        memset(err, 0, sizeof(*err));
        r = mcd_avro_decode_event(a, kind, buf, len, &ev, err);
        if (r == 0)
                mcd_event_clear(&ev);
        return r == -EBADMSG && err->code && strcmp(err->code, code) == 0 && err->message[0];
}

/* ---------------------------------------------------------- round trips -- */

static void test_event_round_trips(struct mcd_avro *a) {
        for (int t = 0; t < MCD_EV__COUNT; t++) {
                struct mcd_event ev = sample_event((enum mcd_event_type)t), got = { 0 };
                struct mcd_avro_error err = { 0 };
                void *buf = NULL;
                size_t len = 0;
                uint64_t fp = 0;
                const char *diff;

                is_int(mcd_avro_encode_event(a, &ev, &buf, &len), 0, "%s encodes", mcd_event_type_name(ev.type));
                if (!buf)
                        continue;
                mcd_avro_fingerprint(mcd_avro_reader_schema(a, kind_of(ev.type)), &fp);
                ok(len > 10 && ((unsigned char *)buf)[0] == 0xC3 && ((unsigned char *)buf)[1] == 0x01 &&
                   header_fp(buf) == fp,
                   "%s has the single-object header of its schema", mcd_event_type_name(ev.type));
                is_int(mcd_avro_decode_event(a, kind_of(ev.type), buf, len, &got, &err), 0, "%s decodes",
                       mcd_event_type_name(ev.type));
                diff = event_diff(&ev, &got);
                ok(diff == NULL, "%s round trips (first difference: %s)", mcd_event_type_name(ev.type),
                   diff ? diff : "none");
                mcd_event_clear(&got);
                free(buf);
        }

        /* Optional fields absent, defaults, an empty array. */
        {
                struct mcd_event ev = sample_event(MCD_EV_SUBSCRIPTION_CANCELLED), got = { 0 };
                struct mcd_avro_error err;
                void *buf = NULL;
                size_t len = 0;

                ev.services = NULL;
                ev.n_services = 0;
                ev.scope = MCD_SCOPE_ENTIRE_SUBSCRIPTION;
                mcd_avro_encode_event(a, &ev, &buf, &len);
                ok(mcd_avro_decode_event(a, MCD_AVRO_SUBSCRIPTION_EVENT, buf, len, &got, &err) == 0 &&
                   !event_diff(&ev, &got),
                   "SubscriptionCancelled with no services round trips");
                mcd_event_clear(&got);
                free(buf);
        }
        {
                struct mcd_event ev = sample_event(MCD_EV_SUBSCRIPTION_REPORTED), got = { 0 };
                struct mcd_avro_error err;
                void *buf = NULL;
                size_t len = 0;

                ev.billing = MCD_BILLING_USAGE_BASED;
                ev.channel = MCD_CHANNEL_DIRECT;
                ev.seller_partner_id = NULL;
                ev.has_term_end = false;
                ev.term_end = 0;
                mcd_avro_encode_event(a, &ev, &buf, &len);
                ok(mcd_avro_decode_event(a, MCD_AVRO_SUBSCRIPTION_EVENT, buf, len, &got, &err) == 0 &&
                   !event_diff(&ev, &got),
                   "usage-based SubscriptionReported with null seller and term_end round trips");
                mcd_event_clear(&got);
                free(buf);
        }
}

static void test_outcome_round_trips(struct mcd_avro *a) {
        for (int t = 0; t < MCD_OUT__COUNT; t++) {
                struct mcd_outcome o = sample_outcome((enum mcd_outcome_type)t), got = { 0 };
                struct mcd_avro_error err = { 0 };
                void *buf = NULL;
                size_t len = 0;
                uint64_t fp = 0;
                const char *diff;

                is_int(mcd_avro_encode_outcome(a, &o, &buf, &len), 0, "%s encodes", mcd_outcome_type_name(o.type));
                if (!buf)
                        continue;
                mcd_avro_fingerprint(mcd_avro_reader_schema(a, MCD_AVRO_OUTCOME), &fp);
                ok(header_fp(buf) == fp, "%s carries the outcome schema's fingerprint", mcd_outcome_type_name(o.type));
                is_int(mcd_avro_decode_outcome(a, buf, len, &got, &err), 0, "%s decodes", mcd_outcome_type_name(o.type));
                diff = outcome_diff(&o, &got);
                ok(diff == NULL, "%s round trips (first difference: %s)", mcd_outcome_type_name(o.type),
                   diff ? diff : "none");
                mcd_outcome_clear(&got);
                free(buf);
        }
}

/* ------------------------------------------------------- dead letters -- */

static void test_dead_letters(struct mcd_avro *a) {
        struct mcd_event ev = sample_event(MCD_EV_RELATIONSHIP_REQUESTED);
        struct mcd_outcome o = sample_outcome(MCD_OUT_SWITCH_ALLOWED), got = { 0 };
        struct mcd_avro_error err;
        unsigned char *buf = NULL, *copy;
        void *obuf = NULL;
        size_t len = 0, olen = 0;

        if (mcd_avro_encode_event(a, &ev, (void **)&buf, &len) < 0 || !(copy = malloc(len + 16))) {
                ok(0, "encode for the dead-letter tests");
                return;
        }

        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, 5, MCD_DLQ_BAD_MAGIC, &err),
           "5 bytes are BAD_MAGIC");
        tap_diag("%s: %s", err.code, err.message);
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, "", 0, MCD_DLQ_BAD_MAGIC, &err), "0 bytes are BAD_MAGIC");
        memcpy(copy, buf, len);
        copy[1] = 0x02;
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_BAD_MAGIC, &err),
           "a wrong second magic byte is BAD_MAGIC");
        tap_diag("%s: %s", err.code, err.message);
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, "{\"event_id\":1}", 14, MCD_DLQ_BAD_MAGIC, &err),
           "JSON is BAD_MAGIC");

        memcpy(copy, buf, len);
        copy[5] ^= 0x40;
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_UNKNOWN_SCHEMA, &err),
           "a changed fingerprint is UNKNOWN_SCHEMA");
        tap_diag("%s: %s", err.code, err.message);

        ok(decode_fails(a, MCD_AVRO_SUBSCRIPTION_EVENT, buf, len, MCD_DLQ_WRONG_TOPIC, &err),
           "a RelationshipEvent on the subscriptions topic is WRONG_TOPIC");
        tap_diag("%s: %s", err.code, err.message);
        ok(mcd_avro_decode_outcome(a, buf, len, &got, &err) == -EBADMSG && strcmp(err.code, MCD_DLQ_WRONG_TOPIC) == 0,
           "a RelationshipEvent decoded as an outcome is WRONG_TOPIC");
        if (mcd_avro_encode_outcome(a, &o, &obuf, &olen) == 0) {
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, obuf, olen, MCD_DLQ_WRONG_TOPIC, &err),
                   "an outcome on the relationships topic is WRONG_TOPIC");
                free(obuf);
        }

        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len - 1, MCD_DLQ_CORRUPT_AVRO, &err),
           "a body one byte short is CORRUPT_AVRO");
        tap_diag("%s: %s", err.code, err.message);
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, 10, MCD_DLQ_CORRUPT_AVRO, &err),
           "an empty body is CORRUPT_AVRO");
        memcpy(copy, buf, len);
        copy[len] = 0;
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len + 1, MCD_DLQ_CORRUPT_AVRO, &err),
           "a trailing byte is CORRUPT_AVRO");
        tap_diag("%s: %s", err.code, err.message);

        /* Body: event_id "ev-1" (0x08 + 4), occurred_at (varint), customer_id
         * "c-1" (0x06 + 3), cloud (1 byte), payload branch (1 byte), ... */
        {
                size_t at = 10 + 5, cloud, branch;

                while (buf[at] & 0x80)
                        at++;
                at++;                           /* past occurred_at */
                cloud = at + 4;
                branch = cloud + 1;
                memcpy(copy, buf, len);
                copy[cloud] = 0x04;             /* index 2 of a 2-symbol enum */
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_CORRUPT_AVRO, &err),
                   "an enum index out of range is CORRUPT_AVRO");
                tap_diag("%s: %s", err.code, err.message);
                memcpy(copy, buf, len);
                copy[cloud] = 0x01;             /* index -1 */
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_CORRUPT_AVRO, &err),
                   "a negative enum index is CORRUPT_AVRO");
                memcpy(copy, buf, len);
                copy[branch] = 0x06;            /* branch 3 of 3 */
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_CORRUPT_AVRO, &err),
                   "a union branch out of range is CORRUPT_AVRO");
                tap_diag("%s: %s", err.code, err.message);
        }
        memcpy(copy, buf, len);
        copy[10] = 0x07;                        /* event_id length -4 */
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_CORRUPT_AVRO, &err),
           "a negative string length is CORRUPT_AVRO");
        tap_diag("%s: %s", err.code, err.message);
        {
                /* A string length of 2^62: must not be allocated. */
                unsigned char huge[32];

                memcpy(huge, buf, 10);
                memcpy(huge + 10, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10);
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, huge, 20, MCD_DLQ_CORRUPT_AVRO, &err),
                   "a huge string length is CORRUPT_AVRO");
                tap_diag("%s: %s", err.code, err.message);
                memcpy(huge + 10, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, huge, 21, MCD_DLQ_CORRUPT_AVRO, &err),
                   "an 11-byte varint is CORRUPT_AVRO");
        }
        {
                /* A NUL inside a string cannot become a C string. */
                memcpy(copy, buf, len);
                copy[12] = 0;                   /* "ev-1" -> "e\0-1" */
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_CORRUPT_AVRO, &err),
                   "a NUL byte in a string is CORRUPT_AVRO");
        }
        {
                /* Invalid UTF-8 is CORRUPT_AVRO: every kept string must survive JSON. */
                struct mcd_event e2 = { 0 };

                memcpy(copy, buf, len);
                copy[12] = (char)0xff;
                ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, copy, len, MCD_DLQ_CORRUPT_AVRO, &err),
                   "invalid UTF-8 in a string is CORRUPT_AVRO");
                mcd_event_clear(&e2);
        }

        free(copy);
        free(buf);

        {
                /* Decodes, but a field required for its case is missing. */
                struct mcd_event bad = sample_event(MCD_EV_SUBSCRIPTION_REPORTED);

                bad.has_term_end = false;
                buf = NULL;
                ok(mcd_avro_encode_event(a, &bad, (void **)&buf, &len) == 0 &&
                   decode_fails(a, MCD_AVRO_SUBSCRIPTION_EVENT, buf, len, MCD_DLQ_INVALID_EVENT, &err) &&
                   strstr(err.message, "term_end"),
                   "a LICENSE_BASED subscription without term_end is INVALID_EVENT naming term_end");
                tap_diag("%s: %s", err.code, err.message);
                free(buf);
                bad = sample_event(MCD_EV_SUBSCRIPTION_REPORTED);
                bad.seller_partner_id = NULL;
                buf = NULL;
                ok(mcd_avro_encode_event(a, &bad, (void **)&buf, &len) == 0 &&
                   decode_fails(a, MCD_AVRO_SUBSCRIPTION_EVENT, buf, len, MCD_DLQ_INVALID_EVENT, &err) &&
                   strstr(err.message, "seller_partner_id"),
                   "a CSP subscription without seller is INVALID_EVENT naming seller_partner_id");
                tap_diag("%s: %s", err.code, err.message);
                free(buf);
        }
}

/* ---------------------------------------------------- schema evolution -- */



static void add_field(json_t *record, size_t at, const char *field_json) {
        json_array_insert_new(json_object_get(record, "fields"), at, json_loads(field_json, 0, NULL));
}

/* Dumps and registers a writer schema; returns the text (caller frees). */
static char *register_writer(struct mcd_avro *a, enum mcd_avro_kind kind, json_t *schema, const char *what) {
        char *text = json_dumps(schema, JSON_INDENT(2));

        is_int(mcd_avro_register(a, kind, text), 0, "writer schema %s registers", what);
        return text;
}

/* Encodes ev with writer, decodes with the reader; 0 or the decode error. */
static int through_writer(struct mcd_avro *a, const char *writer, const struct mcd_event *ev,
                          struct mcd_event *got, struct mcd_avro_error *err) {
        void *buf = NULL;
        size_t len = 0;
        int r = mcd_avro_encode_event_with(a, writer, ev, &buf, &len);

        if (r == 0)
                r = mcd_avro_decode_event(a, kind_of(ev->type), buf, len, got, err);
        free(buf);
        return r;
}

static void test_newer_writer(struct mcd_avro *a) {
        json_t *s = schema_reader_json(a, MCD_AVRO_RELATIONSHIP_EVENT), *rec;
        struct mcd_event ev = sample_event(MCD_EV_RELATIONSHIP_REQUESTED), got = { 0 };
        struct mcd_avro_error err = { 0 };
        char *writer;

        /* An envelope field before the others, a payload field, a new payload
         * record, and the Cloud symbols in another order. */
        add_field(s, 0, "{\"name\":\"trace_id\",\"type\":\"string\",\"default\":\"no-trace\"}");
        add_field(s, 4, "{\"name\":\"source\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"double\"]},\"default\":{}}");
        rec = schema_payload_record(s, "RelationshipRequested");
        add_field(rec, 1, "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null}");
        add_field(rec, 3, "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[\"a\",\"b\"]}");
        json_array_append_new(json_object_get(json_array_get(json_object_get(s, "fields"), 5), "type"),
                              json_loads("{\"type\":\"record\",\"name\":\"RelationshipPaused\",\"fields\":"
                                         "[{\"name\":\"partner_id\",\"type\":\"string\"}]}",
                                         0, NULL));
        json_object_set_new(json_object_get(json_array_get(json_object_get(s, "fields"), 4), "type"), "symbols",
                            json_pack("[ss]", "US_GOVERNMENT", "COMMERCIAL"));
        writer = register_writer(a, MCD_AVRO_RELATIONSHIP_EVENT, s, "with extra fields");

        ok(through_writer(a, writer, &ev, &got, &err) == 0 && !event_diff(&ev, &got),
           "a newer writer with extra envelope and payload fields decodes to the same event");
        mcd_event_clear(&got);
        ev.cloud = MCD_CLOUD_COMMERCIAL;
        ok(through_writer(a, writer, &ev, &got, &err) == 0 && got.cloud == MCD_CLOUD_COMMERCIAL,
           "enum symbols resolve by name, not index");
        mcd_event_clear(&got);
        ev = sample_event(MCD_EV_RELATIONSHIP_REMOVED);
        ok(through_writer(a, writer, &ev, &got, &err) == 0 && !event_diff(&ev, &got),
           "the same writer's RelationshipRemoved decodes");
        mcd_event_clear(&got);
        free(writer);

        /* A writer field the model does not know and that has no default
         * cannot be encoded. */
        add_field(s, 0, "{\"name\":\"mandatory\",\"type\":\"string\"}");
        writer = json_dumps(s, 0);
        {
                void *buf = NULL;
                size_t len = 0;

                is_int(mcd_avro_encode_event_with(a, writer, &ev, &buf, &len), -EINVAL,
                       "encoding with a writer field that has no value and no default is -EINVAL");
                free(buf);
        }
        free(writer);
        json_decref(s);
}

static void test_older_writer(struct mcd_avro *a) {
        json_t *s = schema_reader_json(a, MCD_AVRO_RELATIONSHIP_EVENT), *rec;
        struct mcd_event ev = sample_event(MCD_EV_RELATIONSHIP_REQUESTED), got = { 0 };
        struct mcd_avro_error err = { 0 };
        char *writer;

        rec = schema_payload_record(s, "RelationshipRequested");
        schema_remove_field(rec, "customer_is_csp_partner");
        schema_remove_field(rec, "indirect_reseller_id");
        writer = register_writer(a, MCD_AVRO_RELATIONSHIP_EVENT, s, "without customer_is_csp_partner");
        ok(through_writer(a, writer, &ev, &got, &err) == 0, "an older writer decodes");
        ok(got.customer_is_csp_partner == false && got.indirect_reseller_id == NULL && streq(got.partner_id, "p-1"),
           "fields the writer lacks take the reader's defaults (false, null)");
        mcd_event_clear(&got);
        free(writer);

        /* A field without default that the writer lacks. */
        schema_remove_field(rec, "partner_id");
        writer = register_writer(a, MCD_AVRO_RELATIONSHIP_EVENT, s, "without partner_id");
        ok(through_writer(a, writer, &ev, &got, &err) == -EBADMSG && strcmp(err.code, MCD_DLQ_INVALID_EVENT) == 0 &&
           strstr(err.message, "partner_id"),
           "a writer lacking a field without default is INVALID_EVENT naming the field");
        tap_diag("%s: %s", err.code, err.message);
        free(writer);
        json_decref(s);

        /* SubscriptionCancelled without services: the default []. */
        s = schema_reader_json(a, MCD_AVRO_SUBSCRIPTION_EVENT);
        schema_remove_field(schema_payload_record(s, "SubscriptionCancelled"), "services");
        schema_remove_field(schema_payload_record(s, "SubscriptionReported"), "seller_partner_id");
        writer = register_writer(a, MCD_AVRO_SUBSCRIPTION_EVENT, s, "without services");
        ev = sample_event(MCD_EV_SUBSCRIPTION_CANCELLED);
        ok(through_writer(a, writer, &ev, &got, &err) == 0 && got.n_services == 0 && got.services == NULL,
           "services the writer lacks default to an empty array");
        mcd_event_clear(&got);
        ev = sample_event(MCD_EV_SUBSCRIPTION_REPORTED);
        ev.channel = MCD_CHANNEL_DIRECT;
        ev.seller_partner_id = NULL;
        ok(through_writer(a, writer, &ev, &got, &err) == 0 && !event_diff(&ev, &got),
           "seller_partner_id the writer lacks defaults to null");
        mcd_event_clear(&got);
        free(writer);
        json_decref(s);

        /* An unregistered writer encodes, but readers do not know it. */
        s = schema_reader_json(a, MCD_AVRO_SUBSCRIPTION_EVENT);
        add_field(s, 1, "{\"name\":\"unregistered\",\"type\":\"boolean\",\"default\":true}");
        writer = json_dumps(s, 0);
        ev = sample_event(MCD_EV_SUBSCRIPTION_TERM_ENDED);
        ok(through_writer(a, writer, &ev, &got, &err) == -EBADMSG && strcmp(err.code, MCD_DLQ_UNKNOWN_SCHEMA) == 0,
           "an unregistered writer schema is UNKNOWN_SCHEMA");
        mcd_event_clear(&got);
        free(writer);
        json_decref(s);
}

/* Re-labels an outcome body with another writer's fingerprint, after
 * dropping `drop` trailing bytes and appending `add`. */
static unsigned char *relabel(const unsigned char *buf, size_t len, const char *writer, size_t drop,
                              const char *add, size_t addlen, size_t *outlen) {
        unsigned char *out = malloc(len + addlen);
        uint64_t fp = 0;

        if (!out)
                return NULL;
        memcpy(out, buf, len - drop);
        memcpy(out + len - drop, add, addlen);
        mcd_avro_fingerprint(writer, &fp);
        for (int i = 0; i < 8; i++)
                out[2 + i] = (unsigned char)(fp >> (8 * i));
        *outlen = len - drop + addlen;
        return out;
}

static void test_outcome_evolution(struct mcd_avro *a) {
        json_t *s = schema_reader_json(a, MCD_AVRO_OUTCOME);
        struct mcd_outcome o = sample_outcome(MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED), got = { 0 };
        struct mcd_avro_error err = { 0 };
        unsigned char *buf = NULL, *msg;
        size_t len = 0, mlen = 0;
        char *writer;

        /* The last field of the body is coexists: a writer without it. */
        schema_remove_field(schema_payload_record(s, "AzureCspSubscriptionCreated"), "coexists");
        writer = register_writer(a, MCD_AVRO_OUTCOME, s, "outcome without coexists");
        o.coexists = false;
        mcd_avro_encode_outcome(a, &o, (void **)&buf, &len);
        msg = buf ? relabel(buf, len, writer, 1, "", 0, &mlen) : NULL;
        ok(msg && mcd_avro_decode_outcome(a, msg, mlen, &got, &err) == 0 && got.coexists == true &&
           streq(got.csp_subscription_id, "csp-1") && got.channel == MCD_CHANNEL_ADVISOR,
           "coexists the writer lacks defaults to true");
        mcd_outcome_clear(&got);
        free(msg);
        free(buf);
        free(writer);
        json_decref(s);

        /* A writer with one more field at the end of TransitionRejected. */
        s = schema_reader_json(a, MCD_AVRO_OUTCOME);
        add_field(schema_payload_record(s, "TransitionRejected"), 2,
                  "{\"name\":\"detail\",\"type\":[\"null\",\"long\"],\"default\":null}");
        writer = register_writer(a, MCD_AVRO_OUTCOME, s, "outcome with a detail field");
        o = sample_outcome(MCD_OUT_TRANSITION_REJECTED);
        buf = NULL;
        mcd_avro_encode_outcome(a, &o, (void **)&buf, &len);
        msg = buf ? relabel(buf, len, writer, 0, "\x02\x54", 2, &mlen) : NULL;
        ok(msg && mcd_avro_decode_outcome(a, msg, mlen, &got, &err) == 0 && !outcome_diff(&o, &got),
           "an outcome field the reader does not know is skipped");
        mcd_outcome_clear(&got);
        free(msg);
        free(buf);
        free(writer);
        json_decref(s);
}

/* A writer with a recursive type and an array of nulls: nesting and item
 * counts must be bounded whatever the bytes say. */
static void test_hostile_structure(struct mcd_avro *a) {
        json_t *s = schema_reader_json(a, MCD_AVRO_RELATIONSHIP_EVENT);
        struct mcd_event ev = sample_event(MCD_EV_RELATIONSHIP_ACCEPTED), got = { 0 };
        struct mcd_avro_error err;
        unsigned char *buf = NULL, *msg;
        size_t len = 0, n;
        char *writer;

        add_field(s, 0, "{\"name\":\"chain\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Node\",\"fields\":"
                        "[{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}],\"default\":null}");
        add_field(s, 1, "{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"},\"default\":[]}");
        writer = register_writer(a, MCD_AVRO_RELATIONSHIP_EVENT, s, "with a recursive type");
        if (mcd_avro_encode_event_with(a, writer, &ev, (void **)&buf, &len) < 0 || !(msg = malloc(len + 100000))) {
                ok(0, "encode with the recursive writer");
                free(buf);
                free(writer);
                json_decref(s);
                return;
        }
        ok(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err) == 0 && !event_diff(&ev, &got),
           "a writer with a recursive type decodes");
        mcd_event_clear(&got);

        /* buf body: chain = 0x00 (null), nulls = 0x00 (empty), then the rest. */
        for (size_t depth = 10; depth <= 90000; depth *= 3) {
                bool corrupt;

                memcpy(msg, buf, 10);
                n = 10;
                for (size_t i = 0; i < depth; i++)
                        msg[n++] = 0x02;        /* branch Node, then its field next */
                msg[n++] = 0x00;
                memcpy(msg + n, buf + 11, len - 11);
                n += len - 11;
                corrupt = decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, msg, n, MCD_DLQ_CORRUPT_AVRO, &err);
                if (depth <= 100)
                        ok(!corrupt, "a chain %zu deep decodes", depth);
                else
                        ok(corrupt, "a chain %zu deep is CORRUPT_AVRO (%s)", depth, err.message);
        }

        /* nulls: a block of 2^60 items takes no bytes per item. */
        memcpy(msg, buf, len);
        n = 10;
        msg[n++] = 0x00;
        memcpy(msg + n, "\x80\x80\x80\x80\x80\x80\x80\x80\x20", 9);
        n += 9;
        msg[n++] = 0x00;
        memcpy(msg + n, buf + 12, len - 12);
        n += len - 12;
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, msg, n, MCD_DLQ_CORRUPT_AVRO, &err),
           "an array block of 2^60 nulls is CORRUPT_AVRO");
        tap_diag("%s: %s", err.code, err.message);

        /* A negative block count with a byte size, as Avro allows. */
        n = 10;
        msg[n++] = 0x00;
        msg[n++] = 0x05;                        /* count -3 */
        msg[n++] = 0x00;                        /* size 0 */
        msg[n++] = 0x00;                        /* end of array */
        memcpy(msg + n, buf + 12, len - 12);
        n += len - 12;
        ok(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, msg, n, &got, &err) == 0,
           "a negative block count with its byte size decodes");
        mcd_event_clear(&got);
        msg[12] = 0x02;                         /* size 1: does not match */
        ok(decode_fails(a, MCD_AVRO_RELATIONSHIP_EVENT, msg, n, MCD_DLQ_CORRUPT_AVRO, &err),
           "a block size that does not match its items is CORRUPT_AVRO");

        free(msg);
        free(buf);
        free(writer);
        json_decref(s);
}

/* --------------------------------------------------------- robustness -- */

static uint64_t xorshift(uint64_t *s) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void test_robustness(struct mcd_avro *a) {
        uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
        size_t decoded = 0, rejected = 0, unexpected = 0;
        unsigned char msg[512];

        for (int t = 0; t < MCD_EV__COUNT; t++) {
                struct mcd_event ev = sample_event((enum mcd_event_type)t);
                unsigned char *buf = NULL;
                size_t len = 0;

                if (mcd_avro_encode_event(a, &ev, (void **)&buf, &len) < 0 || len > sizeof(msg))
                        continue;
                /* Every truncation. */
                for (size_t cut = 0; cut < len; cut++) {
                        struct mcd_avro_error err;

                        if (!decode_fails(a, kind_of(ev.type), buf, cut, cut < 10 ? MCD_DLQ_BAD_MAGIC : MCD_DLQ_CORRUPT_AVRO,
                                          &err))
                                unexpected++;
                }
                /* Random byte changes in the body. */
                for (int i = 0; i < 1500; i++) {
                        struct mcd_event got = { 0 };
                        struct mcd_avro_error err;
                        int flips = 1 + (int)(xorshift(&rng) % 4);

                        memcpy(msg, buf, len);
                        for (int f = 0; f < flips; f++)
                                msg[10 + xorshift(&rng) % (len - 10)] = (unsigned char)xorshift(&rng);
                        if (mcd_avro_decode_event(a, kind_of(ev.type), msg, len - (xorshift(&rng) % 3 == 0),
                                                  &got, &err) == 0) {
                                decoded++;
                                mcd_event_clear(&got);
                        } else
                                rejected++;
                }
                free(buf);
        }
        ok(unexpected == 0, "every truncation of every event type is BAD_MAGIC or CORRUPT_AVRO");

        /* Random bodies behind every known header, and random bytes. */
        for (int i = 0; i < 6000; i++) {
                struct mcd_event got = { 0 };
                struct mcd_outcome og = { 0 };
                struct mcd_avro_error err;
                enum mcd_avro_kind k = (enum mcd_avro_kind)(xorshift(&rng) % MCD_AVRO__KIND_COUNT);
                size_t len = xorshift(&rng) % 200;
                uint64_t fp = 0;

                for (size_t j = 0; j < len; j++)
                        msg[j] = (unsigned char)xorshift(&rng);
                if (i % 3 != 0 && len >= 10) {
                        mcd_avro_fingerprint(mcd_avro_reader_schema(a, k), &fp);
                        msg[0] = 0xC3;
                        msg[1] = 0x01;
                        for (int b = 0; b < 8; b++)
                                msg[2 + b] = (unsigned char)(fp >> (8 * b));
                        /* Small varints make longer valid prefixes. */
                        for (size_t j = 10; j < len; j++)
                                if (xorshift(&rng) % 2)
                                        msg[j] &= 0x0f;
                }
                if (k == MCD_AVRO_OUTCOME) {
                        if (mcd_avro_decode_outcome(a, msg, len, &og, &err) == 0) {
                                decoded++;
                                mcd_outcome_clear(&og);
                        } else
                                rejected++;
                } else if (mcd_avro_decode_event(a, k, msg, len, &got, &err) == 0) {
                        decoded++;
                        mcd_event_clear(&got);
                } else
                        rejected++;
        }
        tap_diag("robustness: %zu decoded, %zu rejected", decoded, rejected);
        ok(rejected > 0, "random inputs were rejected without crashing");
}

/* The daemon decodes a batch on several threads, a codec each: the same
 * messages, good and corrupt, must decode to the same events and the same
 * dead-letter reasons as on one thread. */
struct threaded {
        struct mcd_avro *codecs[2];
        unsigned char **msg;
        size_t *len;
        enum mcd_avro_kind *kind;
        int *rc;
        struct mcd_event *ev;
        struct mcd_avro_error *err;
};

static void threaded_one(void *ctx, size_t i, unsigned thread) {
        struct threaded *t = ctx;

        t->rc[i] = mcd_avro_decode_event(t->codecs[thread], t->kind[i], t->msg[i], t->len[i], &t->ev[i], &t->err[i]);
}

static void test_threads(struct mcd_avro *a) {
        enum { N = 4000 };
        struct threaded t = {.codecs = {a, NULL}};
        struct mcd_par *par = NULL;
        uint64_t rng = UINT64_C(0x2545f4914f6cdd1d);
        size_t same = 0, failed = 0;

        t.msg = calloc(N, sizeof(*t.msg));
        t.len = calloc(N, sizeof(*t.len));
        t.kind = calloc(N, sizeof(*t.kind));
        t.rc = calloc(N, sizeof(*t.rc));
        t.ev = calloc(N, sizeof(*t.ev));
        t.err = calloc(N, sizeof(*t.err));
        if (!ok(t.msg && t.len && t.kind && t.rc && t.ev && t.err && mcd_avro_new(&t.codecs[1]) == 0 &&
                        mcd_par_new(2, &par) == 0,
                "a second codec and two threads"))
                goto out;
        for (size_t i = 0; i < N; i++) {
                struct mcd_event ev = sample_event((enum mcd_event_type)(i % MCD_EV__COUNT));
                void *buf = NULL;
                size_t len = 0;

                t.kind[i] = kind_of(ev.type);
                if (mcd_avro_encode_event(a, &ev, &buf, &len) < 0)
                        continue;
                if (i % 2 && len > 10) {     /* every other one corrupt: flipped bytes or cut short */
                        unsigned char *m = buf;
                        for (int f = 0; f < 3; f++)
                                m[10 + xorshift(&rng) % (len - 10)] = (unsigned char)xorshift(&rng);
                        if (i % 3 == 0)
                                len -= 1 + xorshift(&rng) % 8;
                }
                t.msg[i] = buf;
                t.len[i] = len;
        }
        mcd_par_for(par, N, threaded_one, &t);
        for (size_t i = 0; i < N; i++) {
                struct mcd_event one = {0};
                struct mcd_avro_error err = {0};
                int rc = mcd_avro_decode_event(a, t.kind[i], t.msg[i], t.len[i], &one, &err);

                failed += rc < 0;
                if (rc == t.rc[i] && (rc == 0 ? event_diff(&one, &t.ev[i]) == NULL
                                              : err.code == t.err[i].code && strcmp(err.message, t.err[i].message) == 0))
                        same++;
                if (rc == 0)
                        mcd_event_clear(&one);
                if (t.rc[i] == 0)
                        mcd_event_clear(&t.ev[i]);
        }
        tap_diag("threads: %zu messages, %zu of them dead letters", (size_t)N, failed);
        is_int((int)same, N, "decoded on two threads as on one: same events, same dead-letter reasons");
        ok(failed > N / 4 && failed < N, "both good and corrupt messages among them");
out:
        for (size_t i = 0; t.msg && i < N; i++)
                free(t.msg[i]);
        free(t.msg);
        free(t.len);
        free(t.kind);
        free(t.rc);
        free(t.ev);
        free(t.err);
        mcd_par_free(par);
        mcd_avro_free(t.codecs[1]);
}

/* Writes text to dir/name. */
static void put_file(const char *dir, const char *name, const char *text) {
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static void rm_file(const char *dir, const char *name) {
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        remove(path);
}

/* schemas.dir: a folder's writers known after mcd_avro_use_dir, forgotten
 * when the next folder lacks them; bad files refused with their name. */
static void test_schema_dir(void) {
        char dir[] = "/tmp/mcd-test-avro-dir.XXXXXX", why[512] = "";
        struct mcd_avro *a = NULL;
        struct mcd_avro_dir *d = NULL;
        struct mcd_event ev = sample_event(MCD_EV_RELATIONSHIP_ACCEPTED), got = { 0 };
        struct mcd_avro_error err = { 0 };
        json_t *s;
        char *writer;
        void *buf = NULL;
        size_t len = 0;

        if (!mkdtemp(dir) || mcd_avro_new(&a) < 0) {
                ok(false, "a temporary folder and a codec");
                return;
        }
        s = schema_reader_json(a, MCD_AVRO_RELATIONSHIP_EVENT);
        add_field(s, 0, "{\"name\":\"source_system\",\"type\":[\"null\",\"string\"],\"default\":null}");
        writer = json_dumps(s, 0);
        json_decref(s);
        is_int(mcd_avro_encode_event_with(a, writer, &ev, &buf, &len), 0, "an event encoded with a v2 writer");
        ok(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err) == -EBADMSG &&
           strcmp(err.code, MCD_DLQ_UNKNOWN_SCHEMA) == 0, "before the folder has it, it is UNKNOWN_SCHEMA");

        is_int(mcd_avro_dir_read(dir, false, &d, why, sizeof(why)), 0, "an empty folder reads");
        is_int((int)mcd_avro_dir_count(d), 0, "an empty folder holds no schema");
        mcd_avro_dir_free(d);
        put_file(dir, "README", "not a schema, ignored");
        put_file(dir, "RelationshipEvent.v2.avsc", writer);
        put_file(dir, "RelationshipEvent.v1.avsc", mcd_avro_reader_schema(a, MCD_AVRO_RELATIONSHIP_EVENT));
        is_int(mcd_avro_dir_read(dir, false, &d, why, sizeof(why)), 0, "a folder with v1 and v2 reads");
        is_int((int)mcd_avro_dir_count(d), 2, "both schema files are counted, the README ignored");
        is_int(mcd_avro_use_dir(a, d), 0, "the codec takes the folder (v1 it already knows)");
        mcd_avro_dir_free(d);
        ok(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err) == 0 &&
           !event_diff(&ev, &got), "after it, the v2 event decodes to the same event");
        mcd_event_clear(&got);

        put_file(dir, "SubscriptionEvent.v2.avsc", "{\"type\": \"record\"");
        ok(mcd_avro_dir_read(dir, false, &d, why, sizeof(why)) == -EINVAL && !d &&
           strstr(why, "SubscriptionEvent.v2.avsc"), "a file that is not JSON is refused by name (%s)", why);
        put_file(dir, "SubscriptionEvent.v2.avsc", writer);
        ok(mcd_avro_dir_read(dir, false, &d, why, sizeof(why)) == -EINVAL && strstr(why, "named"),
           "a record named otherwise than its file is refused (%s)", why);
        rm_file(dir, "SubscriptionEvent.v2.avsc");
        put_file(dir, "Relationship.v2.avsc", writer);
        ok(mcd_avro_dir_read(dir, false, &d, why, sizeof(why)) == -EINVAL && strstr(why, "Relationship.v2.avsc"),
           "a schema file of no known record is refused (%s)", why);
        rm_file(dir, "Relationship.v2.avsc");
        ok(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err) == 0,
           "a refused folder changes nothing in the codec");
        mcd_event_clear(&got);

        rm_file(dir, "RelationshipEvent.v2.avsc");
        is_int(mcd_avro_dir_read(dir, false, &d, why, sizeof(why)), 0, "the folder without v2 reads");
        is_int(mcd_avro_use_dir(a, d), 0, "the codec takes it");
        mcd_avro_dir_free(d);
        ok(mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err) == -EBADMSG &&
           strcmp(err.code, MCD_DLQ_UNKNOWN_SCHEMA) == 0, "a writer removed from the folder is forgotten");
        ev = sample_event(MCD_EV_RELATIONSHIP_ACCEPTED);
        free(buf);
        buf = NULL;
        ok(mcd_avro_encode_event(a, &ev, &buf, &len) == 0 &&
           mcd_avro_decode_event(a, MCD_AVRO_RELATIONSHIP_EVENT, buf, len, &got, &err) == 0,
           "the reader schema still decodes");
        mcd_event_clear(&got);

        {
                char missing[sizeof(dir) + 16];

                snprintf(missing, sizeof(missing), "%s-missing", dir);
                ok(mcd_avro_dir_read(missing, false, &d, why, sizeof(why)) == -ENOENT,
                   "a missing folder is an error");
                ok(mcd_avro_dir_read(missing, true, &d, why, sizeof(why)) == 0 && mcd_avro_dir_count(d) == 0,
                   "unless it may be missing");
                mcd_avro_dir_free(d);
        }
        rm_file(dir, "README");
        rm_file(dir, "RelationshipEvent.v1.avsc");
        remove(dir);
        free(buf);
        free(writer);
        mcd_avro_free(a);
}

int main(void) {
        struct mcd_avro *a = NULL;

        is_int(mcd_avro_new(&a), 0, "codec created");
        if (!a)
                return tap_done();
        test_event_round_trips(a);
        test_outcome_round_trips(a);
        test_dead_letters(a);
        test_newer_writer(a);
        test_older_writer(a);
        test_outcome_evolution(a);
        test_hostile_structure(a);
        test_robustness(a);
        test_threads(a);
        test_schema_dir();
        mcd_avro_free(a);
        return tap_done();
}
