/* state_json.c -- a customer's state as JSON: the value of P c:<id> in Redis,
 * the changelog record, and what `multichanneld state` prints.
 *
 * Every field of struct mcd_customer round-trips.  Parked events are written
 * in the replay format (jsonl.h), so they read like the input they came from.
 * "timers" is derived from the subscriptions (one per SWITCH_BLOCKED
 * subscription, due at its term_end) and is ignored when parsing.  Parsing
 * never trusts its input: every type is checked and every failure is a
 * -EINVAL with a one-line reason. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/jsonl.h"
#include "daemon/state_json.h"
#include "daemon/strbuf.h"
#include "handlers/timefmt.h"

/* Version 2 keeps seen ids as [hash, occurred_at] pairs (handlers/seen.h);
 * version 1 kept them as strings, read as ids of no known time. */
#define STATE_JSON_VERSION 2

/* ----------------------------------------------------------------- format */

/* The state is written straight into a string, in the order and with the
 * escaping json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) would give: it is
 * written once per customer per batch, and building a jansson tree first
 * cost more than the rules. */

static void key(struct mcd_strbuf *b, const char *k, bool first) {
        if (!first)
                mcd_sb_putn(b, ",", 1);
        mcd_sb_json_string(b, k);
        mcd_sb_putn(b, ":", 1);
}

static void time_value(struct mcd_strbuf *b, mcd_time_t t) {
        char buf[MCD_TIME_BUFSZ];
        mcd_sb_json_string(b, mcd_time_format(t, buf));
}

static void subscription_write(struct mcd_strbuf *b, const struct mcd_subscription *s) {
        key(b, "subscription_id", true);
        mcd_sb_json_string(b, s->subscription_id);
        key(b, "offer_name", false);
        mcd_sb_json_string(b, s->offer_name);
        key(b, "billing", false);
        mcd_sb_json_string(b, mcd_billing_name(s->billing));
        key(b, "channel", false);
        mcd_sb_json_string(b, mcd_channel_name(s->channel));
        key(b, "seller_partner_id", false);
        mcd_sb_json_string(b, s->seller_partner_id);
        key(b, "term_end", false);
        if (s->has_term_end)
                time_value(b, s->term_end);
        else
                mcd_sb_puts(b, "null");
        key(b, "state", false);
        mcd_sb_json_string(b, mcd_sub_state_name(s->state));
        key(b, "timer_outcomes", false);
        mcd_sb_printf(b, "%lld", (long long)s->timer_outcomes);
}

/* A parked event is written as the replay format writes it (compact, in
 * the same key order), so it is embedded as it comes. */
static void parked_write(struct mcd_strbuf *b, const struct mcd_parked *p) {
        char *line = mcd_jsonl_format_event(&p->event);

        if (!line) {
                b->oom = true;
                return;
        }
        key(b, "deadline", true);
        time_value(b, p->deadline);
        key(b, "event", false);
        mcd_sb_puts(b, line);
        free(line);
}

/* "seen":[["<hash, 16 hex digits>","<occurred_at>"|null],..],"seen_forgot_at":..
 * (null: the time of an id read from a version 1 state, not known yet). */
static void seen_write(struct mcd_strbuf *b, const struct mcd_seen *s) {
        const struct mcd_seen_id *ids = mcd_seen_ids(s);

        key(b, "seen", false);
        mcd_sb_putn(b, "[", 1);
        for (size_t i = 0; i < mcd_seen_count(s); i++) {
                mcd_sb_printf(b, "%s[\"%016" PRIx64 "\",", i ? "," : "", ids[i].hash);
                if (ids[i].occurred_at == MCD_SEEN_LEGACY)
                        mcd_sb_puts(b, "null");
                else
                        time_value(b, ids[i].occurred_at);
                mcd_sb_putn(b, "]", 1);
        }
        mcd_sb_putn(b, "]", 1);
        key(b, "seen_forgot_at", false);
        if (s->has_forgot)
                time_value(b, s->forgot_at);
        else
                mcd_sb_puts(b, "null");
}

static void lists_write(struct mcd_strbuf *b, const struct mcd_customer *c) {
        bool first = true;

        key(b, "subscriptions", false);
        mcd_sb_putn(b, "[", 1);
        for (size_t i = 0; i < c->n_subs; i++) {
                mcd_sb_puts(b, i ? ",{" : "{");
                subscription_write(b, &c->subs[i]);
                mcd_sb_putn(b, "}", 1);
        }
        mcd_sb_putn(b, "]", 1);
        key(b, "parked", false);
        mcd_sb_putn(b, "[", 1);
        for (size_t i = 0; i < c->n_parked; i++) {
                mcd_sb_puts(b, i ? ",{" : "{");
                parked_write(b, &c->parked[i]);
                mcd_sb_putn(b, "}", 1);
        }
        mcd_sb_putn(b, "]", 1);
        key(b, "timers", false);
        mcd_sb_putn(b, "[", 1);
        for (size_t i = 0; i < c->n_subs; i++) {
                const struct mcd_subscription *s = &c->subs[i];
                if (s->state != MCD_SS_SWITCH_BLOCKED || !s->has_term_end)
                        continue;
                mcd_sb_puts(b, first ? "{" : ",{");
                first = false;
                key(b, "subscription_id", true);
                mcd_sb_json_string(b, s->subscription_id);
                key(b, "due", false);
                time_value(b, s->term_end);
                mcd_sb_putn(b, "}", 1);
        }
        mcd_sb_putn(b, "]", 1);
        seen_write(b, &c->seen);
}

char *mcd_state_to_json(const struct mcd_customer *c) {
        struct mcd_strbuf b = {0};

        mcd_sb_putn(&b, "{", 1);
        key(&b, "v", true);
        mcd_sb_printf(&b, "%d", STATE_JSON_VERSION);
        key(&b, "customer_id", false);
        mcd_sb_json_string(&b, c->customer_id);
        key(&b, "cloud", false);
        mcd_sb_json_string(&b, c->has_cloud ? mcd_cloud_name(c->cloud) : NULL);
        key(&b, "state", false);
        mcd_sb_json_string(&b, mcd_customer_state_name(c->state));
        key(&b, "partner_id", false);
        mcd_sb_json_string(&b, c->partner_id);
        key(&b, "indirect_reseller_id", false);
        mcd_sb_json_string(&b, c->indirect_reseller_id);
        lists_write(&b, c);
        mcd_sb_putn(&b, "}", 1);
        return mcd_sb_take(&b);
}

int mcd_state_print(FILE *f, const struct mcd_customer *c, bool pretty) {
        char *text = mcd_state_to_json(c), *indented = NULL;
        json_t *j;

        if (!text)
                return -ENOMEM;
        if (pretty) {
                j = json_loads(text, 0, NULL);
                indented = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
                json_decref(j);
        }
        fputs(indented ? indented : text, f);
        fputc('\n', f);
        free(indented);
        free(text);
        return ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------------ parse */

struct parse_ctx {
        char *why;
        size_t whylen;
};

static int fail(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parse_ctx *p, const char *fmt, ...) {
        va_list ap;

        if (p->why && p->whylen > 0) {
                va_start(ap, fmt);
                vsnprintf(p->why, p->whylen, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* A string or null member; *out is a heap copy or NULL. */
static int get_string(struct parse_ctx *p, json_t *o, const char *where, const char *name, bool required,
                      char **out) {
        json_t *v = json_object_get(o, name);

        *out = NULL;
        if (!v || json_is_null(v)) {
                if (required)
                        return fail(p, "%smissing field \"%s\"", where, name);
                return 0;
        }
        if (!json_is_string(v))
                return fail(p, "%sfield \"%s\" must be a string", where, name);
        *out = strdup(json_string_value(v));
        return *out ? 0 : -ENOMEM;
}

static int get_time(struct parse_ctx *p, json_t *o, const char *where, const char *name, bool required,
                    bool *has, mcd_time_t *out) {
        json_t *v = json_object_get(o, name);

        *has = false;
        if (!v || json_is_null(v)) {
                if (required)
                        return fail(p, "%smissing field \"%s\"", where, name);
                return 0;
        }
        if (!json_is_string(v) || mcd_time_parse(json_string_value(v), out) < 0)
                return fail(p, "%sfield \"%s\" must be an ISO-8601 UTC time", where, name);
        *has = true;
        return 0;
}

/* An enum member named by its symbol; from_name gives the value or < 0. */
static int get_enum(struct parse_ctx *p, json_t *o, const char *where, const char *name,
                    int (*from_name)(const char *), int *out) {
        json_t *v = json_object_get(o, name);
        int r;

        if (!v || json_is_null(v))
                return fail(p, "%smissing field \"%s\"", where, name);
        if (!json_is_string(v) || (r = from_name(json_string_value(v))) < 0)
                return fail(p, "%sfield \"%s\" has an unknown value", where, name);
        *out = r;
        return 0;
}

/* An array member; absent or null is an empty array. */
static int get_array(struct parse_ctx *p, json_t *o, const char *name, json_t **out) {
        json_t *v = json_object_get(o, name);

        *out = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return fail(p, "field \"%s\" must be an array", name);
        *out = v;
        return 0;
}

static int parse_subscription_fields(struct parse_ctx *p, json_t *o, const char *where,
                                     struct mcd_subscription *s) {
        json_t *t = json_object_get(o, "timer_outcomes");
        int billing = 0, channel = 0, state = 0, r;

        if ((r = get_string(p, o, where, "subscription_id", true, &s->subscription_id)) < 0 ||
            (r = get_string(p, o, where, "offer_name", false, &s->offer_name)) < 0 ||
            (r = get_string(p, o, where, "seller_partner_id", false, &s->seller_partner_id)) < 0 ||
            (r = get_enum(p, o, where, "billing", mcd_billing_from_name, &billing)) < 0 ||
            (r = get_enum(p, o, where, "channel", mcd_channel_from_name, &channel)) < 0 ||
            (r = get_enum(p, o, where, "state", mcd_sub_state_from_name, &state)) < 0 ||
            (r = get_time(p, o, where, "term_end", false, &s->has_term_end, &s->term_end)) < 0)
                return r;
        s->billing = billing;
        s->channel = channel;
        s->state = state;
        if (t && !json_is_null(t)) {
                if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > UINT32_MAX)
                        return fail(p, "%sfield \"timer_outcomes\" must be an integer from 0 to %u", where,
                                    UINT32_MAX);
                s->timer_outcomes = (uint32_t)json_integer_value(t);
        }
        return 0;
}

static int parse_subscription(struct parse_ctx *p, json_t *o, size_t i, struct mcd_customer *c) {
        struct mcd_subscription s = {0};
        char where[48];
        int r;

        snprintf(where, sizeof(where), "subscriptions[%zu]: ", i);
        if (!json_is_object(o))
                return fail(p, "%smust be an object", where);
        r = parse_subscription_fields(p, o, where, &s);
        if (r >= 0 && mcd_customer_find_sub(c, s.subscription_id))
                r = fail(p, "%sduplicate subscription \"%s\"", where, s.subscription_id);
        if (r >= 0)
                r = mcd_customer_add_sub(c, &s);       /* copies */
        free(s.subscription_id);
        free(s.offer_name);
        free(s.seller_partner_id);
        return r;
}

static int parse_parked(struct parse_ctx *p, json_t *o, size_t i, struct mcd_customer *c) {
        struct mcd_event ev;
        json_t *e;
        char where[48], why[256] = "";
        char *line;
        mcd_time_t deadline = 0;
        bool has;
        int r;

        snprintf(where, sizeof(where), "parked[%zu]: ", i);
        if (!json_is_object(o))
                return fail(p, "%smust be an object", where);
        r = get_time(p, o, where, "deadline", true, &has, &deadline);
        if (r < 0)
                return r;
        e = json_object_get(o, "event");
        if (!json_is_object(e))
                return fail(p, "%sfield \"event\" must be an object", where);
        line = json_dumps(e, JSON_COMPACT);
        if (!line)
                return -ENOMEM;
        r = mcd_jsonl_parse_event(line, strlen(line), &ev, why, sizeof(why));
        free(line);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(p, "%sevent: %s", where, why);
        r = mcd_customer_add_parked(c, &ev, deadline);      /* copies */
        mcd_event_clear(&ev);
        return r;
}

/* Version 1: the id itself, of no known time.  Version 2: [hash, time]. */
static int parse_seen_id(struct parse_ctx *p, json_t *item, size_t i, int version, struct mcd_customer *c) {
        const char *hex = json_string_value(json_array_get(item, 0));
        json_t *at = json_array_get(item, 1);
        mcd_time_t t = MCD_SEEN_LEGACY;
        uint64_t hash = 0;

        if (version == 1) {
                if (!json_is_string(item))
                        return fail(p, "seen[%zu]: must be a string", i);
                return mcd_customer_mark_seen(c, json_string_value(item), MCD_SEEN_LEGACY);
        }
        if (!json_is_array(item) || json_array_size(item) != 2 || !hex || strlen(hex) != 16 ||
            strspn(hex, "0123456789abcdef") != 16 || (hash = strtoull(hex, NULL, 16)) == 0)
                return fail(p, "seen[%zu]: must be [\"<16 hex digits>\", time or null]", i);
        if (!json_is_null(at) && (!json_is_string(at) || mcd_time_parse(json_string_value(at), &t) < 0))
                return fail(p, "seen[%zu]: the time must be an ISO-8601 UTC time or null", i);
        return mcd_seen_add(&c->seen, hash, t);
}

static int parse_lists(struct parse_ctx *p, json_t *root, int version, struct mcd_customer *c) {
        json_t *subs, *parked, *seen, *item;
        size_t i;
        int r;

        if ((r = get_array(p, root, "subscriptions", &subs)) < 0 ||
            (r = get_array(p, root, "parked", &parked)) < 0 ||
            (r = get_array(p, root, "seen", &seen)) < 0)
                return r;
        json_array_foreach(subs, i, item)
                if ((r = parse_subscription(p, item, i, c)) < 0)
                        return r;
        json_array_foreach(parked, i, item)
                if ((r = parse_parked(p, item, i, c)) < 0)
                        return r;
        json_array_foreach(seen, i, item)
                if ((r = parse_seen_id(p, item, i, version, c)) < 0)
                        return r;
        return get_time(p, root, "", "seen_forgot_at", false, &c->seen.has_forgot, &c->seen.forgot_at);
}

static int parse_customer(struct parse_ctx *p, json_t *root, struct mcd_customer *c) {
        json_t *v = json_object_get(root, "v");
        char *id = NULL;
        int state = 0, cloud = 0, version, r;

        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > STATE_JSON_VERSION)
                return fail(p, "field \"v\" must be 1 to %d", STATE_JSON_VERSION);
        version = (int)json_integer_value(v);
        r = get_string(p, root, "", "customer_id", true, &id);
        if (r < 0)
                return r;
        r = mcd_customer_init(c, id);
        free(id);
        if (r < 0)
                return r;
        v = json_object_get(root, "cloud");
        if (v && !json_is_null(v)) {
                if ((r = get_enum(p, root, "", "cloud", mcd_cloud_from_name, &cloud)) < 0)
                        return r;
                c->has_cloud = true;
                c->cloud = cloud;
        }
        if ((r = get_enum(p, root, "", "state", mcd_customer_state_from_name, &state)) < 0 ||
            (r = get_string(p, root, "", "partner_id", false, &c->partner_id)) < 0 ||
            (r = get_string(p, root, "", "indirect_reseller_id", false, &c->indirect_reseller_id)) < 0)
                return r;
        c->state = state;
        return parse_lists(p, root, version, c);
}

int mcd_state_from_json(const char *json, size_t len, struct mcd_customer *c, char *why, size_t whylen) {
        struct parse_ctx p = {.why = why, .whylen = whylen};
        json_error_t jerr;
        json_t *root;
        int r;

        memset(c, 0, sizeof(*c));
        if (!json)
                return fail(&p, "no JSON");
        root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return fail(&p, "invalid JSON: %s", jerr.text);
        if (!json_is_object(root))
                r = fail(&p, "not a JSON object");
        else
                r = parse_customer(&p, root, c);
        json_decref(root);
        if (r == -ENOMEM)
                fail(&p, "out of memory");
        if (r < 0)
                mcd_customer_clear(c);
        return r;
}
