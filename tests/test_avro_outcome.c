/* test_avro_outcome.c -- daemon/avro_outcome.c, the outcome writer that
 * follows a plan made from the outcome schema: its bytes are the ones
 * libavro-c writes for the same value (read back with libavro-c and written
 * again, byte for byte), for every outcome type, null and present optional
 * strings, negative and large times, every symbol of every enum, each
 * decoding as the value written; an enum
 * value out of range is refused; a schema the plan does not cover (a field
 * missing, a field more, a type changed, a symbol missing, a payload record
 * renamed) makes no plan, and one with a union's branches swapped does. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"
#include "daemon/macro.h"
#include "tests/samples.h"
#include "tests/schema_edit.h"
#include "tests/tap.h"

static const struct schema_entry *outcome_entry(struct mcd_avro *a) {
        return &a->v[a->reader[MCD_AVRO_OUTCOME]];
}

/* Whether libavro-c, reading o's body and writing it again, gives the same
 * bytes. */
static bool libavro_agrees(struct mcd_avro *a, const struct mcd_outcome *o) {
        const struct schema_entry *e = outcome_entry(a);
        const void *buf;
        size_t len, size = 0;
        avro_value_t v;
        avro_reader_t rd;
        avro_writer_t w;
        char *again = NULL;
        bool same = false;

        if (mcd_avro_outcome_bytes(a, o, &buf, &len) < 0 || len < SOE_HEADER_SIZE)
                return false;
        if (avro_generic_value_new(e->iface, &v) != 0)
                return false;
        rd = avro_reader_memory((const char *)buf + SOE_HEADER_SIZE, (int64_t)(len - SOE_HEADER_SIZE));
        if (rd && avro_value_read(rd, &v) == 0 && avro_value_sizeof(&v, &size) == 0 &&
            size == len - SOE_HEADER_SIZE && (again = malloc(size + 1))) {
                w = avro_writer_memory(again, (int64_t)size);
                same = w && avro_value_write(w, &v) == 0 &&
                       memcmp(again, (const char *)buf + SOE_HEADER_SIZE, size) == 0;
                if (w)
                        avro_writer_free(w);
        }
        free(again);
        if (rd)
                avro_reader_free(rd);
        avro_value_decref(&v);
        return same;
}

static bool same_text(const char *x, const char *y) {
        return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

/* Whether o, encoded and decoded (by the codec's decoder, through
 * libavro-c), comes back with the values the plan writes. */
static bool decodes_as(struct mcd_avro *a, const struct mcd_outcome *o) {
        struct mcd_outcome got = {0};
        struct mcd_avro_error err = {0};
        const void *buf;
        size_t len;
        bool same;

        if (mcd_avro_outcome_bytes(a, o, &buf, &len) < 0 || mcd_avro_decode_outcome(a, buf, len, &got, &err) < 0)
                return false;
        same = got.type == o->type && got.cloud == o->cloud && got.occurred_at == o->occurred_at &&
               got.customer_state == o->customer_state && same_text(got.partner_id, o->partner_id) &&
               same_text(got.subscription_id, o->subscription_id) && same_text(got.message, o->message) &&
               same_text(got.event_id, o->event_id) && same_text(got.customer_id, o->customer_id);
        switch (o->type) {
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                same = same && got.next_action == o->next_action;
                /* fall through */
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                same = same && got.billing == o->billing && got.channel == o->channel;
                break;
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                same = same && got.term_end == o->term_end && got.channel == o->channel;
                break;
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                same = same && got.coexists == o->coexists && got.channel == o->channel;
                /* fall through */
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                same = same && same_text(got.csp_subscription_id, o->csp_subscription_id);
                break;
        default:
                break;
        }
        mcd_outcome_clear(&got);
        return same;
}

static void test_bytes(struct mcd_avro *a) {
        for (int t = 0; t < MCD_OUT__COUNT; t++) {
                struct mcd_outcome o = sample_outcome((enum mcd_outcome_type)t);

                ok(libavro_agrees(a, &o), "%s: libavro-c writes the same bytes", mcd_outcome_type_name(o.type));
                o.partner_id = o.partner_id ? NULL : "p-9";
                o.subscription_id = o.subscription_id ? NULL : "s-9";
                o.csp_subscription_id = t == MCD_OUT_SUBSCRIPTION_MIGRATED ? NULL : o.csp_subscription_id;
                o.occurred_at = -1234567;
                o.term_end = INT64_MAX;
                o.coexists = !o.coexists;
                ok(libavro_agrees(a, &o), "%s: the same with the optional strings swapped, times at the edges",
                   mcd_outcome_type_name(o.type));
                ok(decodes_as(a, &o), "%s: and those values decode as written", mcd_outcome_type_name(o.type));
        }
}

/* Outcomes around the writer's first buffer (1 KiB), every length on a
 * fresh codec, so that its first growth lands on each side of the
 * boundary, then far past it (doubling several times): the bytes are
 * libavro-c's and decode as written. */
static void test_long_strings(void) {
        struct mcd_avro *a = NULL;
        static const size_t sizes[] = {70000, 200000};
        char *text = malloc(200001);
        int agreed = 0, n = 0;

        if (mcd_avro_new(&a) < 0 || !text) {
                ok(false, "a codec and a text for the long outcomes");
                goto out;
        }
        memset(text, 'm', 200000);
        for (size_t len = 900; len <= 1100 + ELEMENTSOF(sizes); len++, n++) {
                struct mcd_outcome o = sample_outcome(MCD_OUT_TRANSITION_REJECTED);
                size_t l = len <= 1100 ? len : sizes[len - 1101];
                text[l] = '\0';
                o.message = text;
                agreed += libavro_agrees(a, &o) && decodes_as(a, &o);
                text[l] = 'm';
        }
        ok(agreed == n, "messages of 900 to 1100 bytes, 70000 and 200000: libavro-c's bytes, decoded as written "
                        "(%d of %d)", agreed, n);
out:
        free(text);
        mcd_avro_free(a);
}

/* Every symbol of every enum, each written where libavro-c reads it. */
static void test_symbols(struct mcd_avro *a) {
        struct mcd_outcome o = sample_outcome(MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED);
        int agreed = 0, n = 0;

        for (int i = 0; i < MCD_CHANNEL__COUNT; i++, n++) {
                o.channel = (enum mcd_channel)i;
                o.billing = (enum mcd_billing)(i % MCD_BILLING__COUNT);
                o.next_action = (enum mcd_next_action)(i % MCD_NEXT__COUNT);
                o.cloud = (enum mcd_cloud)(i % MCD_CLOUD__COUNT);
                o.customer_state = (enum mcd_customer_state)(i % MCD_CS__COUNT);
                agreed += libavro_agrees(a, &o) && decodes_as(a, &o);
        }
        ok(agreed == n, "every channel, billing, next action, cloud and state symbol, written and decoded (%d of %d)", agreed, n);
        o.channel = MCD_CHANNEL__COUNT;
        ok(mcd_avro_outcome_bytes(a, &o, &(const void *){0}, &(size_t){0}) == -EINVAL,
           "a channel past the enum's end is -EINVAL");
        o = sample_outcome(MCD_OUT_SWITCH_ALLOWED);
        o.type = MCD_OUT__COUNT;
        ok(mcd_avro_outcome_bytes(a, &o, &(const void *){0}, &(size_t){0}) == -EINVAL,
           "an outcome type past the end is -EINVAL");
}

/* The outcome schema with change applied to its parsed JSON; the plan's
 * result. */
static int plan_of_changed(struct mcd_avro *a, void (*change)(json_t *schema)) {
        json_t *j = json_loads(mcd_avro_reader_schema(a, MCD_AVRO_OUTCOME), 0, NULL);
        struct mcd_outcome_plan *p = NULL;
        struct schema_entry e;
        char *text;
        int r;

        change(j);
        text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!text || mcd_avro_entry_init(&e, text) < 0) {
                free(text);
                return -ENOEXEC;        /* the changed schema itself is not valid Avro */
        }
        r = mcd_avro_outcome_plan_new(&e, &p);
        free(p);
        mcd_avro_entry_clear(&e);
        free(text);
        return r;
}


static void unchanged(json_t *s) {
        (void)s;
}

static void drop_message(json_t *s) {
        schema_remove_field(s, "message");
}

static void add_field(json_t *s) {
        json_array_append_new(json_object_get(s, "fields"), json_pack("{s:s, s:s}", "name", "extra", "type", "string"));
}

static void cloud_as_string(json_t *s) {
        json_object_set_new(schema_field(s, "cloud"), "type", json_string("string"));
}

static void occurred_at_as_int(json_t *s) {
        json_object_set_new(schema_field(s, "occurred_at"), "type", json_string("int"));
}

static void drop_symbol(json_t *s) {
        json_array_remove(json_object_get(json_object_get(schema_field(s, "cloud"), "type"), "symbols"), 1);
}

static void rename_payload_record(json_t *s) {
        json_t *first = json_array_get(json_object_get(schema_field(s, "payload"), "type"), 0);
        json_object_set_new(first, "name", json_string("StateChanged"));
}

static void swap_partner_union(json_t *s) {
        json_object_set_new(schema_field(s, "partner_id"), "type", json_pack("[s, s]", "string", "null"));
        json_object_del(schema_field(s, "partner_id"), "default");
}

static void test_plans(struct mcd_avro *a) {
        is_int(plan_of_changed(a, unchanged), 0, "the shipped outcome schema makes a plan");
        is_int(plan_of_changed(a, drop_message), -EINVAL, "no plan without the message field");
        is_int(plan_of_changed(a, add_field), -EINVAL, "no plan with a field the model has no value for");
        is_int(plan_of_changed(a, cloud_as_string), -EINVAL, "no plan with an enum made a string");
        is_int(plan_of_changed(a, occurred_at_as_int), -EINVAL, "no plan with a long made an int");
        is_int(plan_of_changed(a, drop_symbol), -EINVAL, "no plan with a cloud the schema cannot name");
        is_int(plan_of_changed(a, rename_payload_record), -EINVAL, "no plan with an outcome type's record renamed");
        is_int(plan_of_changed(a, swap_partner_union), 0, "a plan with [\"string\", \"null\"] for partner_id");
}

int main(void) {
        struct mcd_avro *a = NULL;

        is_int(mcd_avro_new(&a), 0, "codec created");
        if (!a)
                return tap_done();
        test_bytes(a);
        test_long_strings();
        test_symbols(a);
        test_plans(a);
        mcd_avro_free(a);
        return tap_done();
}
