/* subscription_cancelled.c -- CONTRACT.md "The rules", SubscriptionCancelled
 * (never parked):
 *
 *   subscription unknown                 TransitionRejected SUBSCRIPTION_UNKNOWN
 *   scope SOME_SERVICES                  nothing (the legacy subscription keeps coexisting)
 *   ENTIRE_SUBSCRIPTION, CSP_CREATED     MIGRATED; SubscriptionMigrated (csp_subscription_id
 *                                        null: the cancel does not name it)
 *   ENTIRE_SUBSCRIPTION, SWITCH_BLOCKED  SWITCH_ALLOWED; SwitchAllowed SUBSCRIPTION_CANCELLED;
 *                                        timer dropped (it exists only while SWITCH_BLOCKED)
 *   ENTIRE_SUBSCRIPTION, SWITCH_ALLOWED  nothing
 *   ENTIRE_SUBSCRIPTION, REPORTED or SUPPORTED  CANCELLED
 *   already MIGRATED or CANCELLED        nothing */
#include "engine.h"

static int cancel_entire(struct mcd_cause *cx, struct mcd_subscription *s) {
        switch (s->state) {
        case MCD_SS_CSP_CREATED:
                s->state = MCD_SS_MIGRATED;
                return mcd_emit_migrated(cx, s, NULL);
        case MCD_SS_SWITCH_BLOCKED:
                s->state = MCD_SS_SWITCH_ALLOWED;
                return mcd_emit_switch_allowed(cx, s, MCD_SWITCH_SUBSCRIPTION_CANCELLED);
        case MCD_SS_REPORTED:
        case MCD_SS_SUPPORTED:
                s->state = MCD_SS_CANCELLED;
                return 0;
        default:                        /* SWITCH_ALLOWED, MIGRATED, CANCELLED */
                return 0;
        }
}

int mcd_rule_subscription_cancelled(struct mcd_cause *cx, const struct mcd_event *ev) {
        struct mcd_subscription *s = mcd_customer_find_sub(cx->c, ev->subscription_id);

        if (!s)
                return mcd_emit_rejected(cx, "SUBSCRIPTION_UNKNOWN");
        if (ev->scope == MCD_SCOPE_SOME_SERVICES)
                return 0;
        return cancel_entire(cx, s);
}
