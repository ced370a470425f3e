/* jsonl.c -- the replay format: input events and outcomes as JSON lines.
 *
 * Parsing is strict about what the contract requires (types, enum symbols,
 * timestamps, the fields each event type must carry) and lenient about what
 * it allows: fields with a default may be left out, and unknown fields are
 * ignored so that producers can add fields, as with Avro schema evolution. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/jsonl.h"
#include "handlers/timefmt.h"

/* ------------------------------------------------------------------ parse */

struct parse_ctx {
        json_t *obj;
        char *why;
        size_t whylen;
};

static int fail(struct parse_ctx *p, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, p->whylen, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* A string field.  Absent or null: *out stays NULL, which is an error only
 * when required. */
static int get_string(struct parse_ctx *p, const char *name, bool required, char **out) {
        json_t *v = json_object_get(p->obj, name);

        if (!v || json_is_null(v)) {
                if (required)
                        return fail(p, "missing field \"%s\"", name);
                return 0;
        }
        if (!json_is_string(v))
                return fail(p, "field \"%s\" must be a string", name);
        *out = strdup(json_string_value(v));
        return *out ? 0 : -ENOMEM;
}

static int get_bool(struct parse_ctx *p, const char *name, bool *out) {
        json_t *v = json_object_get(p->obj, name);

        if (!v || json_is_null(v))
                return 0;       /* default false */
        if (!json_is_boolean(v))
                return fail(p, "field \"%s\" must be true or false", name);
        *out = json_is_true(v);
        return 0;
}

/* A timestamp field: an ISO-8601 UTC string.  *has tells whether present. */
static int get_time(struct parse_ctx *p, const char *name, bool required, bool *has, mcd_time_t *out) {
        json_t *v = json_object_get(p->obj, name);

        *has = false;
        if (!v || json_is_null(v)) {
                if (required)
                        return fail(p, "missing field \"%s\"", name);
                return 0;
        }
        if (!json_is_string(v) || mcd_time_parse(json_string_value(v), out) < 0)
                return fail(p, "field \"%s\" must be an ISO-8601 UTC time like \"2026-01-05T10:00:00.000Z\"", name);
        *has = true;
        return 0;
}

/* An enum field, named by its symbol; from_name returns the value or -EINVAL. */
static int get_enum(struct parse_ctx *p, const char *name, int (*from_name)(const char *),
                    const char *(*to_name)(int), int count, int *out) {
        json_t *v = json_object_get(p->obj, name);
        char symbols[256] = "";
        int r;

        if (!v || json_is_null(v))
                return fail(p, "missing field \"%s\"", name);
        if (json_is_string(v)) {
                r = from_name(json_string_value(v));
                if (r >= 0) {
                        *out = r;
                        return 0;
                }
        }
        for (int i = 0; i < count; i++) {
                size_t used = strlen(symbols);
                snprintf(symbols + used, sizeof(symbols) - used, "%s%s", i ? ", " : "", to_name(i));
        }
        return fail(p, "field \"%s\" must be one of %s", name, symbols);
}

/* Adapters so one get_enum serves every enum type. */
#define ENUM_ADAPTER(type, fn)                                                 \
        static const char *fn##_int(int v) { return fn((type)v); }
ENUM_ADAPTER(enum mcd_cloud, mcd_cloud_name)
ENUM_ADAPTER(enum mcd_billing, mcd_billing_name)
ENUM_ADAPTER(enum mcd_channel, mcd_channel_name)
ENUM_ADAPTER(enum mcd_cancel_scope, mcd_scope_name)
#define GET_ENUM(p, name, kind, COUNT, out)                                                         \
        ({                                                                                          \
                int v_ = 0, r_ = get_enum(p, name, mcd_##kind##_from_name, mcd_##kind##_name_int, \
                                          COUNT, &v_);                                              \
                if (r_ >= 0)                                                                        \
                        *(out) = v_;                                                                \
                r_;                                                                                 \
        })

static int get_services(struct parse_ctx *p, struct mcd_event *ev) {
        json_t *v = json_object_get(p->obj, "services"), *item;
        size_t i;

        if (!v || json_is_null(v))
                return 0;       /* default: empty */
        if (!json_is_array(v))
                return fail(p, "field \"services\" must be an array of strings");
        if (json_array_size(v) == 0)
                return 0;
        ev->services = calloc(json_array_size(v), sizeof(char *));
        if (!ev->services)
                return -ENOMEM;
        json_array_foreach(v, i, item) {
                if (!json_is_string(item))
                        return fail(p, "field \"services\" must be an array of strings");
                ev->services[i] = strdup(json_string_value(item));
                if (!ev->services[i])
                        return -ENOMEM;
                ev->n_services = i + 1;
        }
        return 0;
}

static int parse_payload(struct parse_ctx *p, struct mcd_event *ev) {
        bool has;
        int r = 0;

        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                if ((r = get_string(p, "partner_id", true, &ev->partner_id)) < 0 ||
                    (r = get_string(p, "indirect_reseller_id", false, &ev->indirect_reseller_id)) < 0 ||
                    (r = get_bool(p, "customer_is_csp_partner", &ev->customer_is_csp_partner)) < 0)
                        return r;
                break;
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                r = get_string(p, "partner_id", true, &ev->partner_id);
                break;
        case MCD_EV_RELATIONSHIP_REMOVED:
                if ((r = get_string(p, "partner_id", true, &ev->partner_id)) < 0 ||
                    (r = get_string(p, "reason", false, &ev->reason)) < 0)
                        return r;
                break;
        case MCD_EV_SUBSCRIPTION_REPORTED:
                if ((r = get_string(p, "subscription_id", true, &ev->subscription_id)) < 0 ||
                    (r = get_string(p, "offer_name", true, &ev->offer_name)) < 0 ||
                    (r = GET_ENUM(p, "billing", billing, MCD_BILLING__COUNT, &ev->billing)) < 0 ||
                    (r = GET_ENUM(p, "channel", channel, MCD_CHANNEL__COUNT, &ev->channel)) < 0 ||
                    (r = get_string(p, "seller_partner_id", false, &ev->seller_partner_id)) < 0 ||
                    (r = get_time(p, "term_end", false, &has, &ev->term_end)) < 0)
                        return r;
                ev->has_term_end = has;
                break;
        case MCD_EV_SWITCH_REQUESTED:
                if ((r = get_string(p, "subscription_id", true, &ev->subscription_id)) < 0 ||
                    (r = get_string(p, "target_partner_id", true, &ev->target_partner_id)) < 0)
                        return r;
                break;
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                if ((r = get_string(p, "subscription_id", true, &ev->subscription_id)) < 0 ||
                    (r = get_string(p, "csp_subscription_id", true, &ev->csp_subscription_id)) < 0 ||
                    (r = get_string(p, "partner_id", true, &ev->partner_id)) < 0)
                        return r;
                break;
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                if ((r = get_string(p, "subscription_id", true, &ev->subscription_id)) < 0 ||
                    (r = GET_ENUM(p, "scope", scope, MCD_SCOPE__COUNT, &ev->scope)) < 0 ||
                    (r = get_services(p, ev)) < 0)
                        return r;
                break;
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                r = get_string(p, "subscription_id", true, &ev->subscription_id);
                break;
        default:
                r = fail(p, "unknown type");
        }
        return r;
}

static int parse_object(struct parse_ctx *p, struct mcd_event *ev) {
        json_t *type = json_object_get(p->obj, "type");
        const char *why = NULL;
        bool has;
        int r;

        if (!type || json_is_null(type))
                return fail(p, "missing field \"type\"");
        if (!json_is_string(type))
                return fail(p, "field \"type\" must be a string");
        r = mcd_event_type_from_name(json_string_value(type));
        if (r < 0)
                return fail(p, "unknown type \"%s\"", json_string_value(type));
        ev->type = r;

        if ((r = get_string(p, "event_id", true, &ev->event_id)) < 0 ||
            (r = get_time(p, "occurred_at", true, &has, &ev->occurred_at)) < 0 ||
            (r = get_string(p, "customer_id", true, &ev->customer_id)) < 0 ||
            (r = GET_ENUM(p, "cloud", cloud, MCD_CLOUD__COUNT, &ev->cloud)) < 0 ||
            (r = parse_payload(p, ev)) < 0)
                return r;
        if (mcd_event_validate(ev, &why) < 0)
                return fail(p, "%s", why);
        return 0;
}

long mcd_jsonl_getline(char **line, size_t *cap, FILE *in, bool *too_long) {
        size_t len = 0;
        int c;

        *too_long = false;
        while ((c = getc_unlocked(in)) != EOF) {
                if (len < MCD_JSONL_LINE_MAX) {
                        if (len + 2 > *cap) {
                                size_t n = *cap ? *cap * 2 : 256;
                                char *v = realloc(*line, n);
                                if (!v)
                                        return -ENOMEM;
                                *line = v;
                                *cap = n;
                        }
                        (*line)[len] = (char)c;
                }
                len++;
                if (c == '\n')
                        break;
        }
        if (len > MCD_JSONL_LINE_MAX) {
                *too_long = true;
                len = MCD_JSONL_LINE_MAX;
        }
        if (len > 0)
                (*line)[len] = '\0';
        return (long)len;
}

bool mcd_jsonl_blank(const char *line, size_t len) {
        return strspn(line, " \t\r\n") == len;
}

int mcd_jsonl_parse_event(const char *line, size_t len, struct mcd_event *ev, char *why, size_t whylen) {
        struct parse_ctx p = {.why = why, .whylen = whylen};
        json_error_t jerr;
        int r;

        memset(ev, 0, sizeof(*ev));
        p.obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!p.obj)
                return fail(&p, "invalid JSON: %s", jerr.text);
        if (!json_is_object(p.obj))
                r = fail(&p, "not a JSON object");
        else
                r = parse_object(&p, ev);
        json_decref(p.obj);
        if (r == -ENOMEM)
                fail(&p, "out of memory");
        if (r < 0)
                mcd_event_clear(ev);
        return r;
}

/* ----------------------------------------------------------------- format */

/* Every json_object_set_new below takes ownership of its value, even on
 * failure; a failure leaves a partial object that the caller frees. */
static int set(json_t *o, const char *k, json_t *v) {
        return json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static json_t *jstr(const char *s) {
        return s ? json_string(s) : json_null();
}

static json_t *jtime(mcd_time_t t) {
        char buf[MCD_TIME_BUFSZ];
        return json_string(mcd_time_format(t, buf));
}

static char *dump(json_t *o, int r) {
        char *s = r < 0 ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        return s;
}

char *mcd_jsonl_format_event(const struct mcd_event *ev) {
        json_t *o = json_object(), *arr;
        int r = 0;

        if (!o)
                return NULL;
        r |= set(o, "event_id", jstr(ev->event_id));
        r |= set(o, "occurred_at", jtime(ev->occurred_at));
        r |= set(o, "customer_id", jstr(ev->customer_id));
        r |= set(o, "cloud", json_string(mcd_cloud_name(ev->cloud)));
        r |= set(o, "type", json_string(mcd_event_type_name(ev->type)));
        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                r |= set(o, "partner_id", jstr(ev->partner_id));
                r |= set(o, "indirect_reseller_id", jstr(ev->indirect_reseller_id));
                r |= set(o, "customer_is_csp_partner", json_boolean(ev->customer_is_csp_partner));
                break;
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                r |= set(o, "partner_id", jstr(ev->partner_id));
                break;
        case MCD_EV_RELATIONSHIP_REMOVED:
                r |= set(o, "partner_id", jstr(ev->partner_id));
                r |= set(o, "reason", jstr(ev->reason));
                break;
        case MCD_EV_SUBSCRIPTION_REPORTED:
                r |= set(o, "subscription_id", jstr(ev->subscription_id));
                r |= set(o, "offer_name", jstr(ev->offer_name));
                r |= set(o, "billing", json_string(mcd_billing_name(ev->billing)));
                r |= set(o, "channel", json_string(mcd_channel_name(ev->channel)));
                r |= set(o, "seller_partner_id", jstr(ev->seller_partner_id));
                r |= set(o, "term_end", ev->has_term_end ? jtime(ev->term_end) : json_null());
                break;
        case MCD_EV_SWITCH_REQUESTED:
                r |= set(o, "subscription_id", jstr(ev->subscription_id));
                r |= set(o, "target_partner_id", jstr(ev->target_partner_id));
                break;
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                r |= set(o, "subscription_id", jstr(ev->subscription_id));
                r |= set(o, "csp_subscription_id", jstr(ev->csp_subscription_id));
                r |= set(o, "partner_id", jstr(ev->partner_id));
                break;
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                r |= set(o, "subscription_id", jstr(ev->subscription_id));
                r |= set(o, "scope", json_string(mcd_scope_name(ev->scope)));
                arr = json_array();
                for (size_t i = 0; arr && i < ev->n_services; i++)
                        r |= json_array_append_new(arr, json_string(ev->services[i])) ? -ENOMEM : 0;
                r |= set(o, "services", arr);
                break;
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                r |= set(o, "subscription_id", jstr(ev->subscription_id));
                break;
        default:
                r = -EINVAL;
        }
        return dump(o, r);
}

static int format_outcome_payload(json_t *o, const struct mcd_outcome *oc) {
        int r = 0;

        switch (oc->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                r |= set(o, "from_state", json_string(mcd_customer_state_name(oc->from_state)));
                r |= set(o, "to_state", json_string(mcd_customer_state_name(oc->to_state)));
                break;
        case MCD_OUT_RESALE_REJECTED:
                r |= set(o, "reason", jstr(oc->reason));
                break;
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                r |= set(o, "billing", json_string(mcd_billing_name(oc->billing)));
                r |= set(o, "channel", json_string(mcd_channel_name(oc->channel)));
                break;
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                r |= set(o, "billing", json_string(mcd_billing_name(oc->billing)));
                r |= set(o, "channel", json_string(mcd_channel_name(oc->channel)));
                r |= set(o, "next_action", json_string(mcd_next_action_name(oc->next_action)));
                break;
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                r |= set(o, "term_end", jtime(oc->term_end));
                r |= set(o, "channel", json_string(mcd_channel_name(oc->channel)));
                break;
        case MCD_OUT_SWITCH_ALLOWED:
                r |= set(o, "reason", json_string(mcd_switch_reason_name(oc->switch_reason)));
                break;
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                r |= set(o, "csp_subscription_id", jstr(oc->csp_subscription_id));
                r |= set(o, "legacy_channel", json_string(mcd_channel_name(oc->channel)));
                r |= set(o, "coexists", json_boolean(oc->coexists));
                break;
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                r |= set(o, "csp_subscription_id", jstr(oc->csp_subscription_id));
                break;
        case MCD_OUT_TRANSITION_REJECTED:
                r |= set(o, "reason", jstr(oc->reason));
                r |= set(o, "rejected_event_type", jstr(oc->rejected_event_type));
                break;
        default:
                r = -EINVAL;
        }
        return r;
}

char *mcd_jsonl_format_outcome(const struct mcd_outcome *oc) {
        json_t *o = json_object();
        int r = 0;

        if (!o)
                return NULL;
        r |= set(o, "event_id", jstr(oc->event_id));
        r |= set(o, "caused_by", jstr(oc->caused_by));
        r |= set(o, "customer_id", jstr(oc->customer_id));
        r |= set(o, "cloud", json_string(mcd_cloud_name(oc->cloud)));
        r |= set(o, "occurred_at", jtime(oc->occurred_at));
        r |= set(o, "partner_id", jstr(oc->partner_id));
        r |= set(o, "subscription_id", jstr(oc->subscription_id));
        r |= set(o, "customer_state", json_string(mcd_customer_state_name(oc->customer_state)));
        r |= set(o, "message", jstr(oc->message));
        r |= set(o, "type", json_string(mcd_outcome_type_name(oc->type)));
        r |= format_outcome_payload(o, oc);
        return dump(o, r);
}
