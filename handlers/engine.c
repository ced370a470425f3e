/* engine.c -- the steps around the rules (CONTRACT.md "The rules").
 *
 * For every input event: 1. a duplicate event_id changes nothing; 2. an event
 * before the customer's horizon is rejected EVENT_TOO_OLD and not recorded;
 * 3. the first event fixes the customer's cloud, a later one from the other
 * cloud is rejected CLOUD_MISMATCH; then the event's own rule (one file per
 * event type), or PARK_LIMIT when it would park one event too many.  After
 * the rule, the customer's state is settled; then the cause's outcomes are
 * stamped with the resulting customer_state and a message; then, if the
 * customer's state changed, parked events are retried in arrival order, each
 * as its own cause; last, seen ids past the window or the count are
 * forgotten (seen.h).  Timers and park deadlines are derived from the state
 * (mcd_next_due) and fired one at a time (mcd_fire_next_due). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* -------------------------------------------------------- predicates -- */

bool mcd_relationship_active(const struct mcd_customer *c) {
        return c->state == MCD_CS_REQUESTED || c->state == MCD_CS_ACCEPTED || c->state == MCD_CS_MIGRATED;
}

bool mcd_relationship_accepted(const struct mcd_customer *c) {
        return c->state == MCD_CS_ACCEPTED || c->state == MCD_CS_MIGRATED;
}

bool mcd_is_partner(const struct mcd_customer *c, const char *partner_id) {
        return c->partner_id && partner_id && strcmp(c->partner_id, partner_id) == 0;
}

bool mcd_sub_closed(const struct mcd_subscription *s) {
        return s->state == MCD_SS_MIGRATED || s->state == MCD_SS_CANCELLED;
}

bool mcd_sub_in_flight(const struct mcd_subscription *s) {
        switch (s->state) {
        case MCD_SS_SWITCH_BLOCKED:
        case MCD_SS_SWITCH_ALLOWED:
        case MCD_SS_CSP_CREATED:
                return true;
        case MCD_SS_REPORTED:
        case MCD_SS_SUPPORTED:
                return s->billing == MCD_BILLING_USAGE_BASED && s->channel != MCD_CHANNEL_CSP;
        default:
                return false;
        }
}

/* ---------------------------------------------------------- emission -- */

/* The bytes s takes in a block, its NUL included (0: NULL). */
static size_t block_len(const char *s) {
        return s ? strlen(s) + 1 : 0;
}

/* Copies s (NULL: none) to *p and moves *p past its NUL.  Returns the copy,
 * or NULL for NULL. */
static char *block_put(char **p, const char *s) {
        size_t len = block_len(s);
        char *copy = *p;

        if (!s)
                return NULL;
        memcpy(copy, s, len);
        *p += len;
        return copy;
}

/* Writes "<cause>#<n>" and its NUL at *p (put together by hand, not by
 * snprintf: every outcome has one) and moves *p past it.  Returns it. */
static char *put_outcome_id(char **p, const char *cause, size_t cause_len, uint32_t n, size_t digits) {
        char *id = *p;

        memcpy(id, cause, cause_len);
        id[cause_len] = '#';
        for (size_t i = cause_len + digits; i > cause_len; i--, n /= 10)
                id[i] = (char)('0' + n % 10);
        id[cause_len + 1 + digits] = '\0';
        *p += cause_len + 1 + digits + 1;
        return id;
}

/* An outcome's strings, all in one block (o->strings; model.h): event_id,
 * caused_by, customer_id, partner_id and the given ones.  0 or -ENOMEM. */
static int outcome_strings(struct mcd_outcome *o, const char *cause, uint32_t n, const char *customer_id,
                           const char *partner_id, const struct mcd_given *g) {
        size_t cause_len = strlen(cause), digits = 1;
        char *p;

        for (uint32_t v = n; v >= 10; v /= 10)
                digits++;
        p = malloc(2 * (cause_len + 1) + digits + 1 + block_len(customer_id) + block_len(partner_id) +
                   block_len(g->subscription_id) + block_len(g->reason) + block_len(g->csp_subscription_id) +
                   block_len(g->rejected_event_type));
        if (!(o->strings = p))
                return -ENOMEM;
        o->event_id = put_outcome_id(&p, cause, cause_len, n, digits);
        o->caused_by = block_put(&p, cause);
        o->customer_id = block_put(&p, customer_id);
        o->partner_id = block_put(&p, partner_id);
        o->subscription_id = block_put(&p, g->subscription_id);
        o->reason = block_put(&p, g->reason);
        o->csp_subscription_id = block_put(&p, g->csp_subscription_id);
        o->rejected_event_type = block_put(&p, g->rejected_event_type);
        return 0;
}

static int fill_common(struct mcd_cause *cx, struct mcd_outcome *o, enum mcd_outcome_type type,
                       const struct mcd_given *g) {
        const struct mcd_customer *c = cx->c;
        const char *partner = cx->partner_id ? cx->partner_id : c->partner_id;

        o->type = type;
        o->cloud = c->cloud;
        o->occurred_at = cx->occurred_at;
        o->customer_state = c->state;
        if (outcome_strings(o, cx->id, cx->n, c->customer_id, partner, g) < 0)
                return -ENOMEM;
        cx->n++;
        return 0;
}

struct mcd_outcome *mcd_emit_given(struct mcd_cause *cx, enum mcd_outcome_type type, const struct mcd_given *g) {
        struct mcd_outcome *o = mcd_outcomes_push(cx->out);

        if (!o)
                return NULL;
        if (fill_common(cx, o, type, g) < 0) {
                mcd_outcome_clear(o);
                cx->out->n--;
                return NULL;
        }
        return o;
}

struct mcd_outcome *mcd_emit(struct mcd_cause *cx, enum mcd_outcome_type type, const char *subscription_id) {
        return mcd_emit_given(cx, type, &(struct mcd_given){.subscription_id = subscription_id});
}

int mcd_set_state(struct mcd_cause *cx, enum mcd_customer_state to) {
        enum mcd_customer_state from = cx->c->state;
        struct mcd_outcome *o;

        if (from == to)
                return 0;
        cx->c->state = to;
        o = mcd_emit(cx, MCD_OUT_CUSTOMER_STATE_CHANGED, NULL);
        if (!o)
                return -ENOMEM;
        o->from_state = from;
        o->to_state = to;
        return 0;
}

int mcd_emit_rejected(struct mcd_cause *cx, const char *reason) {
        const struct mcd_given g = {
                .subscription_id = cx->subscription_id, .reason = reason, .rejected_event_type = cx->event_type,
        };

        return mcd_emit_given(cx, MCD_OUT_TRANSITION_REJECTED, &g) ? 0 : -ENOMEM;
}

static enum mcd_next_action next_action(const struct mcd_subscription *s) {
        if (s->channel == MCD_CHANNEL_CSP)
                return MCD_NEXT_REQUEST_SWITCH;
        if (s->billing == MCD_BILLING_USAGE_BASED)
                return MCD_NEXT_CREATE_AZURE_CSP_SUBSCRIPTION;
        return MCD_NEXT_MANAGE_AS_IS;
}

int mcd_emit_support_enabled(struct mcd_cause *cx, const struct mcd_subscription *s) {
        struct mcd_outcome *o = mcd_emit(cx, MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED, s->subscription_id);

        if (!o)
                return -ENOMEM;
        o->billing = s->billing;
        o->channel = s->channel;
        o->next_action = next_action(s);
        return 0;
}

int mcd_emit_switch_allowed(struct mcd_cause *cx, const struct mcd_subscription *s,
                            enum mcd_switch_reason reason) {
        struct mcd_outcome *o = mcd_emit(cx, MCD_OUT_SWITCH_ALLOWED, s->subscription_id);

        if (!o)
                return -ENOMEM;
        o->switch_reason = reason;
        return 0;
}

int mcd_emit_migrated(struct mcd_cause *cx, const struct mcd_subscription *s, const char *csp_subscription_id) {
        const struct mcd_given g = {.subscription_id = s->subscription_id, .csp_subscription_id = csp_subscription_id};

        return mcd_emit_given(cx, MCD_OUT_SUBSCRIPTION_MIGRATED, &g) ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ causes -- */

static bool event_has_partner_id(enum mcd_event_type t) {
        return mcd_event_is_relationship(t) || t == MCD_EV_CSP_SUBSCRIPTION_CREATED;
}

static void cause_from_event(struct mcd_cause *cx, struct mcd_customer *c, struct mcd_outcomes *out,
                             const struct mcd_rules_config *cfg, const struct mcd_event *ev) {
        *cx = (struct mcd_cause){
                .c = c,
                .out = out,
                .cfg = cfg,
                .id = ev->event_id,
                .occurred_at = ev->occurred_at,
                .partner_id = event_has_partner_id(ev->type) ? ev->partner_id : NULL,
                .subscription_id = ev->subscription_id,
                .event_type = mcd_event_type_name(ev->type),
                .first = out->n,
        };
}

static const mcd_rule_fn rules[MCD_EV__COUNT] = {
        [MCD_EV_RELATIONSHIP_REQUESTED] = mcd_rule_relationship_requested,
        [MCD_EV_RELATIONSHIP_ACCEPTED] = mcd_rule_relationship_accepted,
        [MCD_EV_RELATIONSHIP_REMOVED] = mcd_rule_relationship_removed,
        [MCD_EV_SUBSCRIPTION_REPORTED] = mcd_rule_subscription_reported,
        [MCD_EV_SWITCH_REQUESTED] = mcd_rule_switch_requested,
        [MCD_EV_CSP_SUBSCRIPTION_CREATED] = mcd_rule_csp_subscription_created,
        [MCD_EV_SUBSCRIPTION_CANCELLED] = mcd_rule_subscription_cancelled,
        [MCD_EV_SUBSCRIPTION_TERM_ENDED] = mcd_rule_subscription_term_ended,
};

static int run_rule(struct mcd_cause *cx, const struct mcd_event *ev) {
        if ((unsigned)ev->type >= MCD_EV__COUNT)
                return -EINVAL;
        return rules[ev->type](cx, ev);
}

/* ACCEPTED with a MIGRATED subscription and none in flight becomes MIGRATED;
 * MIGRATED with something in flight goes back to ACCEPTED. */
static int settle(struct mcd_cause *cx) {
        const struct mcd_customer *c = cx->c;
        bool migrated = false, in_flight = false;

        for (size_t i = 0; i < c->n_subs; i++) {
                migrated = migrated || c->subs[i].state == MCD_SS_MIGRATED;
                in_flight = in_flight || mcd_sub_in_flight(&c->subs[i]);
        }
        if (c->state == MCD_CS_ACCEPTED && migrated && !in_flight)
                return mcd_set_state(cx, MCD_CS_MIGRATED);
        if (c->state == MCD_CS_MIGRATED && in_flight)
                return mcd_set_state(cx, MCD_CS_ACCEPTED);
        return 0;
}

/* Settles, then stamps the cause's outcomes with the customer's state and
 * their message. */
static int settle_and_stamp(struct mcd_cause *cx) {
        int r = settle(cx);

        if (r < 0)
                return r;
        for (size_t i = cx->first; i < cx->out->n; i++) {
                struct mcd_outcome *o = &cx->out->v[i];
                o->customer_state = cx->c->state;
                free(o->message);
                o->message = mcd_outcome_message(o);
                if (!o->message)
                        return -ENOMEM;
        }
        return 0;
}

/* One pass over the parked events, in arrival order: each one the rules no
 * longer park is applied as its own cause and leaves the queue. */
static int retry_pass(struct mcd_customer *c, const struct mcd_rules_config *cfg, struct mcd_outcomes *out) {
        size_t i = 0;

        while (i < c->n_parked) {
                struct mcd_cause cx;
                int r;

                cause_from_event(&cx, c, out, cfg, &c->parked[i].event);
                r = run_rule(&cx, &c->parked[i].event);
                if (r == MCD_RULE_PARK) {
                        i++;
                        continue;
                }
                if (r < 0)
                        return r;
                r = settle_and_stamp(&cx);
                if (r < 0)
                        return r;
                mcd_customer_remove_parked(c, i);
        }
        return 0;
}

/* Parked events are retried each time the customer's state changes,
 * including changes made by the retried events themselves. */
static int retry_parked(struct mcd_customer *c, enum mcd_customer_state before,
                        const struct mcd_rules_config *cfg, struct mcd_outcomes *out) {
        while (c->state != before && c->n_parked > 0) {
                int r;

                before = c->state;
                r = retry_pass(c, cfg, out);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int finish_cause(struct mcd_cause *cx, enum mcd_customer_state before) {
        int r = settle_and_stamp(cx);

        if (r < 0)
                return r;
        return retry_parked(cx->c, before, cx->cfg, cx->out);
}

/* Rule 2: before the customer's horizon (seen.h), an event might repeat an
 * id already forgotten. */
static bool too_old(const struct mcd_customer *c, const struct mcd_event *ev, const struct mcd_rules_config *cfg) {
        mcd_time_t horizon;

        return mcd_seen_horizon(&c->seen, cfg->dedup_window, &horizon) && ev->occurred_at < horizon;
}

/* The event's own rule, or the rejection that comes first: the other cloud
 * (rule 3), or one parked event too many (PARK_LIMIT). */
static int apply_rule(struct mcd_cause *cx, const struct mcd_event *ev, mcd_time_t now) {
        struct mcd_customer *c = cx->c;
        int r;

        if (ev->cloud != c->cloud)
                return mcd_emit_rejected(cx, "CLOUD_MISMATCH");
        r = run_rule(cx, ev);
        if (r != MCD_RULE_PARK)
                return r;
        if (c->n_parked >= cx->cfg->max_parked)
                return mcd_emit_rejected(cx, "PARK_LIMIT");
        r = mcd_customer_add_parked(c, ev, now + cx->cfg->park_grace);
        return r < 0 ? r : MCD_RULE_PARK;
}

int mcd_apply_event(struct mcd_customer *c, const struct mcd_event *ev, mcd_time_t now,
                    const struct mcd_rules_config *cfg, struct mcd_outcomes *out) {
        const struct mcd_rules_config defaults = MCD_RULES_CONFIG_DEFAULT;
        enum mcd_customer_state before = c->state;
        struct mcd_cause cx;
        int r;

        if (!ev->event_id || (unsigned)ev->type >= MCD_EV__COUNT)
                return -EINVAL;
        if (c->customer_id && ev->customer_id && strcmp(c->customer_id, ev->customer_id) != 0)
                return -EINVAL;
        if (!cfg)
                cfg = &defaults;
        if (mcd_customer_has_seen(c, ev->event_id))
                return 0;
        mcd_seen_stamp_legacy(&c->seen, ev->occurred_at);
        cause_from_event(&cx, c, out, cfg, ev);
        if (too_old(c, ev, cfg)) {
                r = mcd_emit_rejected(&cx, "EVENT_TOO_OLD");
                return r < 0 ? r : settle_and_stamp(&cx);
        }
        r = mcd_customer_mark_seen(c, ev->event_id, ev->occurred_at);
        if (r < 0)
                return r;
        if (!c->has_cloud) {
                c->has_cloud = true;
                c->cloud = ev->cloud;
        }
        r = apply_rule(&cx, ev, now);
        if (r >= 0 && r != MCD_RULE_PARK)
                r = finish_cause(&cx, before);
        if (r < 0)
                return r;
        mcd_seen_forget(&c->seen, cfg->dedup_window, cfg->max_seen_ids);
        return 0;
}

/* ------------------------------------------------------------ timers -- */

char *mcd_timer_cause(const char *customer_id, const char *subscription_id) {
        size_t len;
        char *s;

        if (!customer_id || !subscription_id)
                return NULL;
        len = strlen(customer_id) + strlen(subscription_id) + sizeof("timer:::term_end");
        s = malloc(len);
        if (s)
                snprintf(s, len, "timer:%s:%s:term_end", customer_id, subscription_id);
        return s;
}

/* A pending due item: a blocked subscription's timer or a parked deadline. */
struct due_item {
        mcd_time_t due;
        const char *subscription_id;
        bool is_deadline;
        size_t index;                 /* in subs, or in parked */
};

static bool due_before(const struct due_item *a, const struct due_item *b) {
        int r;

        if (a->due != b->due)
                return a->due < b->due;
        r = strcmp(a->subscription_id ? a->subscription_id : "", b->subscription_id ? b->subscription_id : "");
        if (r != 0)
                return r < 0;
        if (a->is_deadline != b->is_deadline)
                return !a->is_deadline;
        return a->index < b->index;
}

static void consider(struct due_item *best, bool *found, const struct due_item *it) {
        if (!*found || due_before(it, best)) {
                *best = *it;
                *found = true;
        }
}

static bool earliest_due(const struct mcd_customer *c, struct due_item *best) {
        bool found = false;

        for (size_t i = 0; i < c->n_subs; i++) {
                const struct mcd_subscription *s = &c->subs[i];
                if (s->state != MCD_SS_SWITCH_BLOCKED || !s->has_term_end)
                        continue;
                consider(best, &found, &(struct due_item){ s->term_end, s->subscription_id, false, i });
        }
        for (size_t i = 0; i < c->n_parked; i++) {
                const struct mcd_parked *p = &c->parked[i];
                consider(best, &found, &(struct due_item){ p->deadline, p->event.subscription_id, true, i });
        }
        return found;
}

bool mcd_next_due(const struct mcd_customer *c, mcd_time_t *due, const char **subscription_id) {
        struct due_item it;

        if (!earliest_due(c, &it))
                return false;
        if (due)
                *due = it.due;
        if (subscription_id)
                *subscription_id = it.subscription_id;
        return true;
}

static int fire_timer(struct mcd_customer *c, size_t i, const struct mcd_rules_config *cfg,
                      struct mcd_outcomes *out) {
        enum mcd_customer_state before = c->state;
        struct mcd_subscription *s = &c->subs[i];
        struct mcd_cause cx;
        char *id;
        int r;

        id = mcd_timer_cause(c->customer_id, s->subscription_id);
        if (!id)
                return -ENOMEM;
        cx = (struct mcd_cause){
                .c = c,
                .out = out,
                .cfg = cfg,
                .id = id,
                .occurred_at = s->term_end,
                .subscription_id = s->subscription_id,
                .event_type = "SubscriptionTermEnded",
                .first = out->n,
                .n = s->timer_outcomes,
        };
        r = mcd_term_ended_blocked(&cx, s);
        if (r >= 0)
                r = settle_and_stamp(&cx);
        c->subs[i].timer_outcomes = cx.n;
        free(id);
        if (r < 0)
                return r;
        return retry_parked(c, before, cfg, out);
}

static int fire_deadline(struct mcd_customer *c, size_t i, const struct mcd_rules_config *cfg,
                         struct mcd_outcomes *out) {
        enum mcd_customer_state before = c->state;
        struct mcd_cause cx;
        int r;

        cause_from_event(&cx, c, out, cfg, &c->parked[i].event);
        r = mcd_emit_rejected(&cx, "NO_ACCEPTED_RELATIONSHIP");
        if (r >= 0)
                r = settle_and_stamp(&cx);
        if (r < 0)
                return r;
        mcd_customer_remove_parked(c, i);
        return retry_parked(c, before, cfg, out);
}

int mcd_fire_next_due(struct mcd_customer *c, mcd_time_t now, const struct mcd_rules_config *cfg,
                      struct mcd_outcomes *out) {
        const struct mcd_rules_config defaults = MCD_RULES_CONFIG_DEFAULT;
        struct due_item it;
        int r;

        if (!cfg)
                cfg = &defaults;
        if (!earliest_due(c, &it) || it.due > now)
                return 0;
        if (it.is_deadline)
                r = fire_deadline(c, it.index, cfg, out);
        else
                r = fire_timer(c, it.index, cfg, out);
        return r < 0 ? r : 1;
}
