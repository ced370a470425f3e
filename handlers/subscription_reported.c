/* subscription_reported.c -- CONTRACT.md "The rules", SubscriptionReported:
 *
 *   already known                        nothing
 *   channel CSP, and the seller is the partner of an active relationship
 *   (REQUESTED, ACCEPTED or MIGRATED)    TransitionRejected ALREADY_WITH_PARTNER
 *   one more than limits.subscriptions   TransitionRejected SUBSCRIPTION_LIMIT
 *   state NONE or CANCELLED              recorded REPORTED; RelationshipRequestRequired
 *   state REQUESTED                      recorded REPORTED
 *   state ACCEPTED or MIGRATED           recorded SUPPORTED; MultiChannelSupportEnabled */
#include <errno.h>

#include "engine.h"

static int record(struct mcd_cause *cx, const struct mcd_event *ev, enum mcd_sub_state state,
                  struct mcd_subscription **added) {
        struct mcd_customer *c = cx->c;
        struct mcd_subscription s = {
                .subscription_id = ev->subscription_id,
                .offer_name = ev->offer_name,
                .billing = ev->billing,
                .channel = ev->channel,
                .seller_partner_id = ev->channel == MCD_CHANNEL_CSP ? ev->seller_partner_id : NULL,
                .has_term_end = ev->has_term_end,
                .term_end = ev->term_end,
                .state = state,
        };
        int r = mcd_customer_add_sub(c, &s);

        if (r < 0)
                return r;
        *added = &c->subs[c->n_subs - 1];
        return 0;
}

static int request_required(struct mcd_cause *cx, const struct mcd_subscription *s) {
        struct mcd_outcome *o = mcd_emit(cx, MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED, s->subscription_id);

        if (!o)
                return -ENOMEM;
        o->billing = s->billing;
        o->channel = s->channel;
        return 0;
}

int mcd_rule_subscription_reported(struct mcd_cause *cx, const struct mcd_event *ev) {
        const struct mcd_customer *c = cx->c;
        struct mcd_subscription *s;
        int r;

        if (mcd_customer_find_sub(c, ev->subscription_id))
                return 0;
        if (ev->channel == MCD_CHANNEL_CSP && mcd_relationship_active(c) &&
            mcd_is_partner(c, ev->seller_partner_id))
                return mcd_emit_rejected(cx, "ALREADY_WITH_PARTNER");
        if (c->n_subs >= cx->cfg->max_subscriptions)
                return mcd_emit_rejected(cx, "SUBSCRIPTION_LIMIT");
        if (c->state == MCD_CS_REQUESTED)
                return record(cx, ev, MCD_SS_REPORTED, &s);
        if (!mcd_relationship_accepted(c)) {
                r = record(cx, ev, MCD_SS_REPORTED, &s);
                return r < 0 ? r : request_required(cx, s);
        }
        r = record(cx, ev, MCD_SS_SUPPORTED, &s);
        return r < 0 ? r : mcd_emit_support_enabled(cx, s);
}
