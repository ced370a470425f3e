/* model.c -- names, validation, copies and containers of the domain model.
 *
 * Plain data helpers only: no rules live here (see engine.c and the one file
 * per event type).  Every allocation is checked; functions return 0 or a
 * negative errno. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* ------------------------------------------------------------- names -- */

static const char *const cloud_names[MCD_CLOUD__COUNT] = {
        [MCD_CLOUD_COMMERCIAL] = "COMMERCIAL",
        [MCD_CLOUD_US_GOVERNMENT] = "US_GOVERNMENT",
};

static const char *const customer_state_names[MCD_CS__COUNT] = {
        [MCD_CS_NONE] = "NONE",
        [MCD_CS_REQUESTED] = "REQUESTED",
        [MCD_CS_ACCEPTED] = "ACCEPTED",
        [MCD_CS_MIGRATED] = "MIGRATED",
        [MCD_CS_CANCELLED] = "CANCELLED",
};

static const char *const sub_state_names[MCD_SS__COUNT] = {
        [MCD_SS_REPORTED] = "REPORTED",
        [MCD_SS_SUPPORTED] = "SUPPORTED",
        [MCD_SS_SWITCH_BLOCKED] = "SWITCH_BLOCKED",
        [MCD_SS_SWITCH_ALLOWED] = "SWITCH_ALLOWED",
        [MCD_SS_CSP_CREATED] = "CSP_CREATED",
        [MCD_SS_MIGRATED] = "MIGRATED",
        [MCD_SS_CANCELLED] = "CANCELLED",
};

static const char *const billing_names[MCD_BILLING__COUNT] = {
        [MCD_BILLING_LICENSE_BASED] = "LICENSE_BASED",
        [MCD_BILLING_USAGE_BASED] = "USAGE_BASED",
};

static const char *const channel_names[MCD_CHANNEL__COUNT] = {
        [MCD_CHANNEL_DIRECT] = "DIRECT",
        [MCD_CHANNEL_ADVISOR] = "ADVISOR",
        [MCD_CHANNEL_OPEN] = "OPEN",
        [MCD_CHANNEL_EA] = "EA",
        [MCD_CHANNEL_THIRD_PARTY] = "THIRD_PARTY",
        [MCD_CHANNEL_CSP] = "CSP",
};

static const char *const scope_names[MCD_SCOPE__COUNT] = {
        [MCD_SCOPE_SOME_SERVICES] = "SOME_SERVICES",
        [MCD_SCOPE_ENTIRE_SUBSCRIPTION] = "ENTIRE_SUBSCRIPTION",
};

static const char *const next_action_names[MCD_NEXT__COUNT] = {
        [MCD_NEXT_MANAGE_AS_IS] = "MANAGE_AS_IS",
        [MCD_NEXT_CREATE_AZURE_CSP_SUBSCRIPTION] = "CREATE_AZURE_CSP_SUBSCRIPTION",
        [MCD_NEXT_REQUEST_SWITCH] = "REQUEST_SWITCH",
};

static const char *const switch_reason_names[MCD_SWITCH__COUNT] = {
        [MCD_SWITCH_TERM_ENDED] = "TERM_ENDED",
        [MCD_SWITCH_SUBSCRIPTION_CANCELLED] = "SUBSCRIPTION_CANCELLED",
        [MCD_SWITCH_USAGE_BASED] = "USAGE_BASED",
};

static const char *const event_type_names[MCD_EV__COUNT] = {
        [MCD_EV_RELATIONSHIP_REQUESTED] = "RelationshipRequested",
        [MCD_EV_RELATIONSHIP_ACCEPTED] = "RelationshipAccepted",
        [MCD_EV_RELATIONSHIP_REMOVED] = "RelationshipRemoved",
        [MCD_EV_SUBSCRIPTION_REPORTED] = "SubscriptionReported",
        [MCD_EV_SWITCH_REQUESTED] = "SwitchRequested",
        [MCD_EV_CSP_SUBSCRIPTION_CREATED] = "CspSubscriptionCreated",
        [MCD_EV_SUBSCRIPTION_CANCELLED] = "SubscriptionCancelled",
        [MCD_EV_SUBSCRIPTION_TERM_ENDED] = "SubscriptionTermEnded",
};

static const char *const outcome_type_names[MCD_OUT__COUNT] = {
        [MCD_OUT_CUSTOMER_STATE_CHANGED] = "CustomerStateChanged",
        [MCD_OUT_RESALE_REJECTED] = "ResaleRejected",
        [MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED] = "RelationshipRequestRequired",
        [MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED] = "MultiChannelSupportEnabled",
        [MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END] = "SwitchBlockedUntilTermEnd",
        [MCD_OUT_SWITCH_ALLOWED] = "SwitchAllowed",
        [MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED] = "AzureCspSubscriptionCreated",
        [MCD_OUT_SUBSCRIPTION_MIGRATED] = "SubscriptionMigrated",
        [MCD_OUT_TRANSITION_REJECTED] = "TransitionRejected",
};

static const char *name_of(const char *const *table, size_t n, int v) {
        if (v < 0 || (size_t)v >= n)
                return NULL;
        return table[v];
}

static int from_name(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (strcmp(table[i], s) == 0)
                        return (int)i;
        return -EINVAL;
}

#define NAME_FUNCS(kind, type, table)                                                            \
        const char *mcd_##kind##_name(type v) {                                                  \
                return name_of(table, sizeof(table) / sizeof(table[0]), (int)v);                 \
        }                                                                                        \
        int mcd_##kind##_from_name(const char *s) {                                              \
                return from_name(table, sizeof(table) / sizeof(table[0]), s);                    \
        }

NAME_FUNCS(cloud, enum mcd_cloud, cloud_names)
NAME_FUNCS(customer_state, enum mcd_customer_state, customer_state_names)
NAME_FUNCS(sub_state, enum mcd_sub_state, sub_state_names)
NAME_FUNCS(billing, enum mcd_billing, billing_names)
NAME_FUNCS(channel, enum mcd_channel, channel_names)
NAME_FUNCS(scope, enum mcd_cancel_scope, scope_names)
NAME_FUNCS(next_action, enum mcd_next_action, next_action_names)
NAME_FUNCS(switch_reason, enum mcd_switch_reason, switch_reason_names)
NAME_FUNCS(event_type, enum mcd_event_type, event_type_names)
NAME_FUNCS(outcome_type, enum mcd_outcome_type, outcome_type_names)

/* -------------------------------------------------------- validation -- */

static bool has_partner_id(enum mcd_event_type t) {
        return t == MCD_EV_RELATIONSHIP_REQUESTED || t == MCD_EV_RELATIONSHIP_ACCEPTED ||
               t == MCD_EV_RELATIONSHIP_REMOVED || t == MCD_EV_CSP_SUBSCRIPTION_CREATED;
}

static int invalid(const char **why, const char *text) {
        if (why)
                *why = text;
        return -EINVAL;
}

static int validate_reported(const struct mcd_event *ev, const char **why) {
        if (!ev->offer_name)
                return invalid(why, "offer_name is required");
        if ((unsigned)ev->billing >= MCD_BILLING__COUNT)
                return invalid(why, "billing is not a known Billing");
        if ((unsigned)ev->channel >= MCD_CHANNEL__COUNT)
                return invalid(why, "channel is not a known Channel");
        if (ev->channel == MCD_CHANNEL_CSP && !ev->seller_partner_id)
                return invalid(why, "seller_partner_id is required when channel is CSP");
        if (ev->billing == MCD_BILLING_LICENSE_BASED && !ev->has_term_end)
                return invalid(why, "term_end is required for a LICENSE_BASED subscription");
        return 0;
}

static int validate_cancelled(const struct mcd_event *ev, const char **why) {
        if ((unsigned)ev->scope >= MCD_SCOPE__COUNT)
                return invalid(why, "scope is not a known CancelScope");
        if (ev->n_services > 0 && !ev->services)
                return invalid(why, "services is missing");
        for (size_t i = 0; i < ev->n_services; i++)
                if (!ev->services[i])
                        return invalid(why, "services holds a null entry");
        return 0;
}

static bool id_too_long(const char *id) {
        return id && strnlen(id, MCD_ID_MAX + 1) > MCD_ID_MAX;
}

#define LONGER " is longer than 128 bytes"

/* CONTRACT.md "Bounds": identifiers are at most MCD_ID_MAX bytes. */
static int validate_ids(const struct mcd_event *ev, const char **why) {
        const struct {
                const char *value, *why;
        } ids[] = {
                {ev->event_id, "event_id" LONGER},
                {ev->customer_id, "customer_id" LONGER},
                {ev->partner_id, "partner_id" LONGER},
                {ev->subscription_id, "subscription_id" LONGER},
                {ev->csp_subscription_id, "csp_subscription_id" LONGER},
                {ev->target_partner_id, "target_partner_id" LONGER},
                {ev->seller_partner_id, "seller_partner_id" LONGER},
                {ev->indirect_reseller_id, "indirect_reseller_id" LONGER},
        };

        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
                if (id_too_long(ids[i].value))
                        return invalid(why, ids[i].why);
        return 0;
}

int mcd_event_validate(const struct mcd_event *ev, const char **why) {
        if (!ev)
                return invalid(why, "no event");
        if ((unsigned)ev->type >= MCD_EV__COUNT)
                return invalid(why, "type is not a known event type");
        if (!ev->event_id)
                return invalid(why, "event_id is required");
        if (!ev->customer_id)
                return invalid(why, "customer_id is required");
        if ((unsigned)ev->cloud >= MCD_CLOUD__COUNT)
                return invalid(why, "cloud is not a known Cloud");
        if (!mcd_time_in_range(ev->occurred_at) || (ev->has_term_end && !mcd_time_in_range(ev->term_end)))
                return invalid(why, "occurred_at and term_end must lie in the years 0000 to 9999");
        if (has_partner_id(ev->type) && !ev->partner_id)
                return invalid(why, "partner_id is required");
        if (validate_ids(ev, why) < 0)
                return -EINVAL;
        if (mcd_event_is_relationship(ev->type))
                return 0;
        if (!ev->subscription_id)
                return invalid(why, "subscription_id is required");

        switch (ev->type) {
        case MCD_EV_SUBSCRIPTION_REPORTED:
                return validate_reported(ev, why);
        case MCD_EV_SWITCH_REQUESTED:
                if (!ev->target_partner_id)
                        return invalid(why, "target_partner_id is required");
                return 0;
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                if (!ev->csp_subscription_id)
                        return invalid(why, "csp_subscription_id is required");
                return 0;
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                return validate_cancelled(ev, why);
        default:
                return 0;
        }
}

/* ------------------------------------------------------------ events -- */

static int dup_str(char **dst, const char *src) {
        *dst = NULL;
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

static void free_services(char **v, size_t n) {
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static int copy_services(struct mcd_event *dst, const struct mcd_event *src) {
        dst->services = NULL;
        dst->n_services = 0;
        if (src->n_services == 0 || !src->services)
                return 0;
        dst->services = calloc(src->n_services, sizeof(char *));
        if (!dst->services)
                return -ENOMEM;
        dst->n_services = src->n_services;
        for (size_t i = 0; i < src->n_services; i++)
                if (dup_str(&dst->services[i], src->services[i]) < 0)
                        return -ENOMEM;
        return 0;
}

/* Forgets (does not free) ev's strings: ev then owns none. */
static void event_forget_strings(struct mcd_event *ev) {
        ev->event_id = ev->customer_id = ev->partner_id = ev->indirect_reseller_id = ev->reason = NULL;
        ev->subscription_id = ev->offer_name = ev->seller_partner_id = ev->target_partner_id = NULL;
        ev->csp_subscription_id = ev->strings = NULL;
        ev->services = NULL;
        ev->n_services = 0;
}

/* The copy's strings are allocations of their own (strings NULL). */
int mcd_event_copy(struct mcd_event *dst, const struct mcd_event *src) {
        *dst = *src;
        event_forget_strings(dst);
        if (dup_str(&dst->event_id, src->event_id) < 0 ||
            dup_str(&dst->customer_id, src->customer_id) < 0 ||
            dup_str(&dst->partner_id, src->partner_id) < 0 ||
            dup_str(&dst->indirect_reseller_id, src->indirect_reseller_id) < 0 ||
            dup_str(&dst->reason, src->reason) < 0 ||
            dup_str(&dst->subscription_id, src->subscription_id) < 0 ||
            dup_str(&dst->offer_name, src->offer_name) < 0 ||
            dup_str(&dst->seller_partner_id, src->seller_partner_id) < 0 ||
            dup_str(&dst->target_partner_id, src->target_partner_id) < 0 ||
            dup_str(&dst->csp_subscription_id, src->csp_subscription_id) < 0 ||
            copy_services(dst, src) < 0) {
                mcd_event_clear(dst);
                return -ENOMEM;
        }
        return 0;
}

void mcd_event_clear(struct mcd_event *ev) {
        if (!ev)
                return;
        if (ev->strings) {
                free(ev->strings);
                free(ev->services);
        } else {
                free(ev->event_id);
                free(ev->customer_id);
                free(ev->partner_id);
                free(ev->indirect_reseller_id);
                free(ev->reason);
                free(ev->subscription_id);
                free(ev->offer_name);
                free(ev->seller_partner_id);
                free(ev->target_partner_id);
                free(ev->csp_subscription_id);
                free_services(ev->services, ev->n_services);
        }
        memset(ev, 0, sizeof(*ev));
}

/* --------------------------------------------------------- customers -- */

/* Returns v grown so it holds at least n + 1 items of `size` bytes (v itself
 * when it already does), or NULL on allocation failure (v is kept). */
static void *grow(void *v, size_t n, size_t *cap, size_t size) {
        size_t ncap;
        void *nv;

        if (n < *cap)
                return v;
        ncap = *cap ? *cap * 2 : 4;
        if (ncap > SIZE_MAX / size)
                return NULL;
        nv = realloc(v, ncap * size);
        if (!nv)
                return NULL;
        *cap = ncap;
        return nv;
}

int mcd_customer_init(struct mcd_customer *c, const char *customer_id) {
        memset(c, 0, sizeof(*c));
        if (!customer_id)
                return -EINVAL;
        return dup_str(&c->customer_id, customer_id);
}

static void subscription_clear(struct mcd_subscription *s) {
        free(s->subscription_id);
        free(s->offer_name);
        free(s->seller_partner_id);
        memset(s, 0, sizeof(*s));
}

void mcd_customer_clear(struct mcd_customer *c) {
        if (!c)
                return;
        free(c->customer_id);
        free(c->partner_id);
        free(c->indirect_reseller_id);
        for (size_t i = 0; i < c->n_subs; i++)
                subscription_clear(&c->subs[i]);
        free(c->subs);
        for (size_t i = 0; i < c->n_parked; i++)
                mcd_event_clear(&c->parked[i].event);
        free(c->parked);
        mcd_seen_clear(&c->seen);
        memset(c, 0, sizeof(*c));
}

struct mcd_subscription *mcd_customer_find_sub(const struct mcd_customer *c, const char *subscription_id) {
        if (!subscription_id)
                return NULL;
        for (size_t i = 0; i < c->n_subs; i++)
                if (strcmp(c->subs[i].subscription_id, subscription_id) == 0)
                        return &c->subs[i];
        return NULL;
}

bool mcd_customer_has_seen(const struct mcd_customer *c, const char *event_id) {
        return event_id && mcd_seen_has(&c->seen, mcd_id_hash(event_id));
}

int mcd_customer_mark_seen(struct mcd_customer *c, const char *event_id, mcd_time_t occurred_at) {
        if (!event_id)
                return -EINVAL;
        return mcd_seen_add(&c->seen, mcd_id_hash(event_id), occurred_at);
}

/* A copy of the first MCD_OFFER_NAME_KEPT bytes of name, cut before a UTF-8
 * continuation byte.  0 or -ENOMEM. */
static int dup_offer_name(char **dst, const char *name) {
        size_t n;

        *dst = NULL;
        if (!name)
                return 0;
        n = strnlen(name, MCD_OFFER_NAME_KEPT + 1);
        if (n > MCD_OFFER_NAME_KEPT) {
                n = MCD_OFFER_NAME_KEPT;
                while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
                        n--;
        }
        *dst = strndup(name, n);
        return *dst ? 0 : -ENOMEM;
}

int mcd_customer_add_sub(struct mcd_customer *c, const struct mcd_subscription *s) {
        struct mcd_subscription *d, *v;

        if (!s->subscription_id)
                return -EINVAL;
        v = grow(c->subs, c->n_subs, &c->cap_subs, sizeof(*c->subs));
        if (!v)
                return -ENOMEM;
        c->subs = v;
        d = &c->subs[c->n_subs];
        *d = *s;
        if (dup_str(&d->subscription_id, s->subscription_id) < 0 ||
            dup_offer_name(&d->offer_name, s->offer_name) < 0 ||
            dup_str(&d->seller_partner_id, s->seller_partner_id) < 0) {
                subscription_clear(d);
                return -ENOMEM;
        }
        c->n_subs++;
        return 0;
}

int mcd_customer_add_parked(struct mcd_customer *c, const struct mcd_event *ev, mcd_time_t deadline) {
        struct mcd_parked *p, *v;

        v = grow(c->parked, c->n_parked, &c->cap_parked, sizeof(*c->parked));
        if (!v)
                return -ENOMEM;
        c->parked = v;
        p = &c->parked[c->n_parked];
        if (mcd_event_copy(&p->event, ev) < 0)
                return -ENOMEM;
        p->deadline = deadline;
        c->n_parked++;
        return 0;
}

void mcd_customer_remove_parked(struct mcd_customer *c, size_t i) {
        if (i >= c->n_parked)
                return;
        mcd_event_clear(&c->parked[i].event);
        memmove(&c->parked[i], &c->parked[i + 1], (c->n_parked - i - 1) * sizeof(*c->parked));
        c->n_parked--;
}

/* ---------------------------------------------------------- outcomes -- */

/* Forgets (does not free) o's strings: o then owns none. */
static void outcome_forget_strings(struct mcd_outcome *o) {
        o->event_id = o->caused_by = o->customer_id = o->partner_id = o->subscription_id = NULL;
        o->message = o->reason = o->csp_subscription_id = o->rejected_event_type = o->strings = NULL;
}

void mcd_outcome_clear(struct mcd_outcome *o) {
        if (!o)
                return;
        if (o->strings) {
                free(o->strings);
        } else {
                free(o->event_id);
                free(o->caused_by);
                free(o->customer_id);
                free(o->partner_id);
                free(o->subscription_id);
                free(o->reason);
                free(o->csp_subscription_id);
                free(o->rejected_event_type);
        }
        free(o->message);
        memset(o, 0, sizeof(*o));
}

/* The copy's strings are allocations of their own (strings NULL). */
int mcd_outcome_copy(struct mcd_outcome *dst, const struct mcd_outcome *src) {
        *dst = *src;
        outcome_forget_strings(dst);
        if (dup_str(&dst->event_id, src->event_id) < 0 ||
            dup_str(&dst->caused_by, src->caused_by) < 0 ||
            dup_str(&dst->customer_id, src->customer_id) < 0 ||
            dup_str(&dst->partner_id, src->partner_id) < 0 ||
            dup_str(&dst->subscription_id, src->subscription_id) < 0 ||
            dup_str(&dst->message, src->message) < 0 ||
            dup_str(&dst->reason, src->reason) < 0 ||
            dup_str(&dst->csp_subscription_id, src->csp_subscription_id) < 0 ||
            dup_str(&dst->rejected_event_type, src->rejected_event_type) < 0) {
                mcd_outcome_clear(dst);
                return -ENOMEM;
        }
        return 0;
}

void mcd_outcomes_init(struct mcd_outcomes *os) {
        memset(os, 0, sizeof(*os));
}

struct mcd_outcome *mcd_outcomes_push(struct mcd_outcomes *os) {
        struct mcd_outcome *o, *v;

        v = grow(os->v, os->n, &os->cap, sizeof(*os->v));
        if (!v)
                return NULL;
        os->v = v;
        o = &os->v[os->n++];
        memset(o, 0, sizeof(*o));
        return o;
}

void mcd_outcomes_clear(struct mcd_outcomes *os) {
        if (!os)
                return;
        for (size_t i = 0; i < os->n; i++)
                mcd_outcome_clear(&os->v[i]);
        free(os->v);
        memset(os, 0, sizeof(*os));
}
