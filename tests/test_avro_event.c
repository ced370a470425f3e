/* test_avro_event.c -- daemon/avro_event.c, events read by a writer
 * schema's plan, against the general path (libavro-c's generic values and
 * the getters by name, avro_decode.c), which one codec here is made to use
 * alone: on every message both give the same result -- the same event, or
 * the same dead letter, code and sentence.  The messages: every event type
 * with its optional fields present and absent, then thousands of mutations
 * of them (bytes changed, cut, inserted), through the shipped writer
 * schemas, a writer with extra fields (skipped, one a double), one with
 * its enum symbols reordered and one the model does not know, one lacking
 * a payload record's defaulted field (that record is the general path's),
 * one with bytes for a string (no plan: the general path alone), and one
 * with an optional string for a required one (null: a dead letter).  The plans are shown
 * made (or not) for each writer, and used: most mutations of a valid body
 * that decode at all are decoded by them. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"
#include "daemon/jsonl.h"
#include "tests/samples.h"
#include "tests/schema_edit.h"
#include "tests/tap.h"

static struct mcd_avro *planned, *general;     /* the same schemas; general reads without plans */

static enum mcd_avro_kind kind_of(enum mcd_event_type t) {
        return mcd_event_is_relationship(t) ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;
}

/* An event as text: its JSON line and the fields it may not show. */
static char *event_text(const struct mcd_event *ev) {
        char *line = mcd_jsonl_format_event(ev), *out = NULL;

        if (asprintf(&out, "%s|%d|%d|%lld|%zu", line ? line : "?", ev->has_term_end, ev->customer_is_csp_partner,
                     (long long)ev->term_end, ev->n_services) < 0)
                out = NULL;
        free(line);
        return out;
}

/* Whether both codecs give the same result for one message. */
static bool agree(enum mcd_avro_kind kind, const void *buf, size_t len, int *result) {
        struct mcd_event e1 = {0}, e2 = {0};
        struct mcd_avro_error x1 = {0}, x2 = {0};
        int r1 = mcd_avro_decode_event(planned, kind, buf, len, &e1, &x1);
        int r2 = mcd_avro_decode_event(general, kind, buf, len, &e2, &x2);
        bool same = r1 == r2;

        if (same && r1 < 0)
                same = strcmp(x1.code, x2.code) == 0 && strcmp(x1.message, x2.message) == 0;
        if (same && r1 == 0) {
                char *t1 = event_text(&e1), *t2 = event_text(&e2);
                same = t1 && t2 && strcmp(t1, t2) == 0;
                if (!same)
                        tap_diag("plan: %s\n# general: %s", t1 ? t1 : "?", t2 ? t2 : "?");
                free(t1);
                free(t2);
        } else if (!same) {
                tap_diag("plan: %d %s %s\n# general: %d %s %s", r1, r1 < 0 ? x1.code : "", r1 < 0 ? x1.message : "",
                         r2, r2 < 0 ? x2.code : "", r2 < 0 ? x2.message : "");
        }
        if (r1 == 0)
                mcd_event_clear(&e1);
        if (r2 == 0)
                mcd_event_clear(&e2);
        *result = r1;
        return same;
}

/* The events of every type, with optional fields present and absent, and
 * without partner_id. */
static size_t events(struct mcd_event *out) {
        static char *none[1];
        size_t n = 0;

        for (int t = 0; t < MCD_EV__COUNT; t++) {
                struct mcd_event ev = sample_event((enum mcd_event_type)t);

                out[n++] = ev;
                ev.indirect_reseller_id = ev.indirect_reseller_id ? NULL : "reseller-\xe2\x82\xac";
                ev.reason = ev.reason ? NULL : "moved";
                ev.seller_partner_id = ev.seller_partner_id ? NULL : "seller";
                ev.has_term_end = !ev.has_term_end;
                ev.term_end = ev.has_term_end ? -5 : 0;
                ev.customer_is_csp_partner = !ev.customer_is_csp_partner;
                ev.services = ev.n_services ? none : ev.services;
                ev.n_services = 0;
                out[n++] = ev;
                ev.partner_id = NULL;   /* required: only a writer with an optional field can say so */
                out[n++] = ev;
        }
        return n;
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

/* A mutation of msg (len bytes) into out: bytes changed, cut or inserted;
 * the header is left alone half of the time, so bodies are what changes. */
static size_t mutate(const unsigned char *msg, size_t len, unsigned char *out) {
        static const unsigned char interesting[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0xc3, 0xe2, 0x3f, 0x40};
        size_t from = next() % 2 ? SOE_HEADER_SIZE : 0, n = len;

        memcpy(out, msg, len);
        for (int k = 0, edits = 1 + (int)(next() % 3); k < edits && n > from; k++) {
                size_t at = from + next() % (n - from);
                switch (next() % 5) {
                case 0: out[at] = (unsigned char)next(); break;
                case 1: out[at] = interesting[next() % sizeof(interesting)]; break;
                case 2: out[at] ^= (unsigned char)(1u << (next() % 8)); break;
                case 3: n = at; break;
                default:
                        memmove(out + at + 1, out + at, n - at);
                        out[at] = interesting[next() % sizeof(interesting)];
                        n++;
                }
        }
        return n;
}

#define MUTATIONS 1500

/* Every event (of the writer's kind) through writer (NULL: the reader
 * schemas), and MUTATIONS mutations of each; how many mutations decoded,
 * in *decoded.  A variant may be an invalid event: both must say so. */
static bool all_agree(const char *writer, enum mcd_avro_kind kind, size_t *decoded, size_t *checked) {
        struct mcd_event ev[3 * MCD_EV__COUNT];
        size_t n = events(ev);
        bool same = true;

        *decoded = *checked = 0;
        for (size_t i = 0; i < n; i++) {
                void *buf = NULL;
                size_t len = 0;
                int r = !writer ? mcd_avro_encode_event(planned, &ev[i], &buf, &len)
                        : kind_of(ev[i].type) == kind ? mcd_avro_encode_event_with(planned, writer, &ev[i], &buf, &len)
                                                      : 0;
                unsigned char *m;

                if (writer && kind_of(ev[i].type) != kind) {
                        free(buf);
                        continue;
                }
                if (r < 0 && !ev[i].partner_id)
                        continue;       /* a writer whose partner_id cannot be null */
                if (r < 0 || !(m = malloc(len + 8))) {
                        free(buf);
                        return false;
                }
                same = agree(kind_of(ev[i].type), buf, len, &r) && same;
                for (int k = 0; k < MUTATIONS && same; k++) {
                        size_t mlen = mutate(buf, len, m);
                        same = agree(kind_of(ev[i].type), m, mlen, &r);
                        *decoded += r == 0;
                        (*checked)++;
                }
                free(m);
                free(buf);
        }
        return same;
}


/* Registers the changed schema with both codecs; its text (freed by the
 * caller) and its entry's plan state after a first decode. */
static char *writer_of(json_t *schema) {
        char *text = json_dumps(schema, JSON_COMPACT);
        enum mcd_avro_kind kind = strcmp(json_string_value(json_object_get(schema, "name")), "RelationshipEvent") == 0
                                          ? MCD_AVRO_RELATIONSHIP_EVENT
                                          : MCD_AVRO_SUBSCRIPTION_EVENT;

        json_decref(schema);
        if (!text || mcd_avro_register(planned, kind, text) < 0 || mcd_avro_register(general, kind, text) < 0) {
                free(text);
                return NULL;
        }
        return text;
}

static int plan_state(const char *writer) {
        uint64_t fp = 0;
        struct schema_entry *e;

        if (mcd_avro_fingerprint(writer, &fp) < 0 || !(e = mcd_avro_find_entry(planned, fp)))
                return -2;
        return e->event_plan_state;
}

static void check_writer(const char *what, const char *writer, enum mcd_avro_kind kind, int want_state) {
        size_t decoded, checked;
        bool same = all_agree(writer, kind, &decoded, &checked);

        ok(same, "%s: the plan and the general path agree on %zu messages (%zu decoded)", what, checked, decoded);
        if (writer)
                is_int(plan_state(writer), want_state, "%s: %s", what, want_state > 0 ? "a plan made" : "no plan");
        ok(decoded > checked / 20, "%s: enough mutated messages still decode to test the reading (%zu)", what,
           decoded);
}

/* Extra fields in the envelope and a payload record: skipped; one a
 * double, NaN in some mutations. */
static char *extra_fields(enum mcd_avro_kind kind, const char *record) {
        json_t *s = schema_reader_json(planned, kind);

        json_array_insert_new(json_object_get(s, "fields"), 1,
                              json_pack("{s:s, s:s, s:f}", "name", "weight", "type", "double", "default", 0.0));
        json_array_append_new(json_object_get(schema_payload_record(s, record), "fields"),
                              json_pack("{s:s, s:{s:s, s:s}, s:[]}", "name", "tags", "type", "type", "array",
                                        "items", "string", "default"));
        return writer_of(s);
}

/* The Cloud enum with its symbols reversed and one the model lacks. */
static char *other_symbols(enum mcd_avro_kind kind) {
        json_t *s = schema_reader_json(planned, kind), *cloud = json_object_get(schema_field(s, "cloud"), "type");

        json_object_set_new(cloud, "symbols", json_pack("[s, s, s]", "CHINA", "US_GOVERNMENT", "COMMERCIAL"));
        return writer_of(s);
}

/* SubscriptionReported without its defaulted seller_partner_id. */
static char *missing_field(void) {
        json_t *s = schema_reader_json(planned, MCD_AVRO_SUBSCRIPTION_EVENT);

        schema_remove_field(schema_payload_record(s, "SubscriptionReported"), "seller_partner_id");
        return writer_of(s);
}

/* event_id written as bytes: no plan (a plan reads strings only). */
static char *bytes_id(void) {
        json_t *s = schema_reader_json(planned, MCD_AVRO_RELATIONSHIP_EVENT);

        json_object_set_new(schema_field(s, "event_id"), "type", json_string("bytes"));
        return writer_of(s);
}

/* partner_id, which an event must have, written as an optional string:
 * a null is the general path's dead letter. */
static char *optional_partner(void) {
        json_t *s = schema_reader_json(planned, MCD_AVRO_RELATIONSHIP_EVENT);

        json_object_set_new(schema_field(schema_payload_record(s, "RelationshipAccepted"), "partner_id"), "type",
                            json_pack("[s, s]", "null", "string"));
        return writer_of(s);
}

int main(void) {
        char *w[7];

        if (mcd_avro_new(&planned) < 0 || mcd_avro_new(&general) < 0) {
                ok(0, "codecs created");
                return tap_done();
        }
        general->no_plans = true;
        check_writer("shipped schemas", NULL, 0, 1);
        is_int(planned->v[planned->reader[MCD_AVRO_RELATIONSHIP_EVENT]].event_plan_state, 1,
               "the shipped RelationshipEvent has a plan");
        is_int(planned->v[planned->reader[MCD_AVRO_SUBSCRIPTION_EVENT]].event_plan_state, 1,
               "the shipped SubscriptionEvent has a plan");
        w[0] = extra_fields(MCD_AVRO_RELATIONSHIP_EVENT, "RelationshipRequested");
        w[1] = extra_fields(MCD_AVRO_SUBSCRIPTION_EVENT, "SubscriptionCancelled");
        w[2] = other_symbols(MCD_AVRO_RELATIONSHIP_EVENT);
        w[3] = other_symbols(MCD_AVRO_SUBSCRIPTION_EVENT);
        w[4] = missing_field();
        w[5] = bytes_id();
        w[6] = optional_partner();
        for (int i = 0; i < 7; i++)
                if (!w[i])
                        ok(0, "writer %d registered", i);
        if (w[0] && w[1]) {
                check_writer("relationships with extra fields", w[0], MCD_AVRO_RELATIONSHIP_EVENT, 1);
                check_writer("subscriptions with extra fields", w[1], MCD_AVRO_SUBSCRIPTION_EVENT, 1);
        }
        if (w[2] && w[3]) {
                check_writer("relationships with other cloud symbols", w[2], MCD_AVRO_RELATIONSHIP_EVENT, 1);
                check_writer("subscriptions with other cloud symbols", w[3], MCD_AVRO_SUBSCRIPTION_EVENT, 1);
        }
        if (w[4])       /* a plan, but SubscriptionReported's branch is the general path's */
                check_writer("subscriptions lacking a defaulted field", w[4], MCD_AVRO_SUBSCRIPTION_EVENT, 1);
        if (w[5])
                check_writer("relationships with a bytes event_id", w[5], MCD_AVRO_RELATIONSHIP_EVENT, -1);
        if (w[6])
                check_writer("relationships with an optional partner_id", w[6], MCD_AVRO_RELATIONSHIP_EVENT, 1);
        for (int i = 0; i < 7; i++)
                free(w[i]);
        mcd_avro_free(planned);
        mcd_avro_free(general);
        return tap_done();
}
