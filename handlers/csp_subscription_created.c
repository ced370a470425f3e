/* csp_subscription_created.c -- CONTRACT.md "The rules", CspSubscriptionCreated:
 *
 *   subscription unknown                 TransitionRejected SUBSCRIPTION_UNKNOWN
 *   state not ACCEPTED/MIGRATED          parked
 *   partner_id is not the relationship partner  TransitionRejected PARTNER_MISMATCH
 *   subscription MIGRATED or CANCELLED   TransitionRejected SUBSCRIPTION_CLOSED
 *   usage-based outside CSP, SUPPORTED   CSP_CREATED; AzureCspSubscriptionCreated
 *                                        (the legacy one coexists until cancelled)
 *   SWITCH_ALLOWED                       MIGRATED; SubscriptionMigrated
 *   SWITCH_BLOCKED                       TransitionRejected SWITCH_BLOCKED_UNTIL_TERM_END
 *   otherwise                            TransitionRejected SWITCH_NOT_REQUESTED */
#include <errno.h>
#include <string.h>

#include "engine.h"

static int azure_created(struct mcd_cause *cx, struct mcd_subscription *s, const char *csp_subscription_id) {
        const struct mcd_given g = {.subscription_id = s->subscription_id, .csp_subscription_id = csp_subscription_id};
        struct mcd_outcome *o;

        s->state = MCD_SS_CSP_CREATED;
        o = mcd_emit_given(cx, MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED, &g);
        if (!o)
                return -ENOMEM;
        o->channel = s->channel;
        o->coexists = true;
        return 0;
}

static bool usage_outside_csp(const struct mcd_subscription *s) {
        return s->billing == MCD_BILLING_USAGE_BASED && s->channel != MCD_CHANNEL_CSP;
}

int mcd_rule_csp_subscription_created(struct mcd_cause *cx, const struct mcd_event *ev) {
        struct mcd_subscription *s = mcd_customer_find_sub(cx->c, ev->subscription_id);

        if (!s)
                return mcd_emit_rejected(cx, "SUBSCRIPTION_UNKNOWN");
        if (!mcd_relationship_accepted(cx->c))
                return MCD_RULE_PARK;
        if (!mcd_is_partner(cx->c, ev->partner_id))
                return mcd_emit_rejected(cx, "PARTNER_MISMATCH");
        if (mcd_sub_closed(s))
                return mcd_emit_rejected(cx, "SUBSCRIPTION_CLOSED");
        if (usage_outside_csp(s) && s->state == MCD_SS_SUPPORTED)
                return azure_created(cx, s, ev->csp_subscription_id);
        if (s->state == MCD_SS_SWITCH_ALLOWED) {
                s->state = MCD_SS_MIGRATED;
                return mcd_emit_migrated(cx, s, ev->csp_subscription_id);
        }
        if (s->state == MCD_SS_SWITCH_BLOCKED)
                return mcd_emit_rejected(cx, "SWITCH_BLOCKED_UNTIL_TERM_END");
        return mcd_emit_rejected(cx, "SWITCH_NOT_REQUESTED");
}
