/* switch_requested.c -- CONTRACT.md "The rules", SwitchRequested:
 *
 *   subscription unknown                 TransitionRejected SUBSCRIPTION_UNKNOWN
 *   state not ACCEPTED/MIGRATED          parked
 *   target is not the relationship partner  TransitionRejected TARGET_NOT_RELATIONSHIP_PARTNER
 *   subscription MIGRATED or CANCELLED   TransitionRejected SUBSCRIPTION_CLOSED
 *   subscription already SWITCH_BLOCKED or SWITCH_ALLOWED  nothing
 *   license-based, term_end after occurred_at  SWITCH_BLOCKED; SwitchBlockedUntilTermEnd;
 *                                        a timer at term_end (derived from SWITCH_BLOCKED)
 *   license-based, term already ended    SWITCH_ALLOWED; SwitchAllowed TERM_ENDED
 *   usage-based, channel CSP             SWITCH_ALLOWED; SwitchAllowed USAGE_BASED
 *   usage-based, other channel           TransitionRejected CREATE_AZURE_CSP_SUBSCRIPTION_INSTEAD */
#include <errno.h>

#include "engine.h"

static int block(struct mcd_cause *cx, struct mcd_subscription *s) {
        struct mcd_outcome *o;

        s->state = MCD_SS_SWITCH_BLOCKED;
        o = mcd_emit(cx, MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END, s->subscription_id);
        if (!o)
                return -ENOMEM;
        o->term_end = s->term_end;
        o->channel = s->channel;
        return 0;
}

static int allow(struct mcd_cause *cx, struct mcd_subscription *s, enum mcd_switch_reason reason) {
        s->state = MCD_SS_SWITCH_ALLOWED;
        return mcd_emit_switch_allowed(cx, s, reason);
}

static int license_based(struct mcd_cause *cx, struct mcd_subscription *s) {
        if (s->has_term_end && s->term_end > cx->occurred_at)
                return block(cx, s);
        return allow(cx, s, MCD_SWITCH_TERM_ENDED);
}

int mcd_rule_switch_requested(struct mcd_cause *cx, const struct mcd_event *ev) {
        struct mcd_subscription *s = mcd_customer_find_sub(cx->c, ev->subscription_id);

        if (!s)
                return mcd_emit_rejected(cx, "SUBSCRIPTION_UNKNOWN");
        if (!mcd_relationship_accepted(cx->c))
                return MCD_RULE_PARK;
        if (!mcd_is_partner(cx->c, ev->target_partner_id))
                return mcd_emit_rejected(cx, "TARGET_NOT_RELATIONSHIP_PARTNER");
        if (mcd_sub_closed(s))
                return mcd_emit_rejected(cx, "SUBSCRIPTION_CLOSED");
        if (s->state == MCD_SS_SWITCH_BLOCKED || s->state == MCD_SS_SWITCH_ALLOWED)
                return 0;
        if (s->billing == MCD_BILLING_LICENSE_BASED)
                return license_based(cx, s);
        if (s->channel == MCD_CHANNEL_CSP)
                return allow(cx, s, MCD_SWITCH_USAGE_BASED);
        return mcd_emit_rejected(cx, "CREATE_AZURE_CSP_SUBSCRIPTION_INSTEAD");
}
