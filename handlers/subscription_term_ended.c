/* subscription_term_ended.c -- CONTRACT.md "The rules", SubscriptionTermEnded,
 * or its timer (never parked):
 *
 *   subscription unknown                 TransitionRejected SUBSCRIPTION_UNKNOWN
 *   SWITCH_BLOCKED                       SWITCH_ALLOWED; SwitchAllowed TERM_ENDED; timer
 *                                        dropped (it exists only while SWITCH_BLOCKED)
 *   otherwise                            term_end becomes the earlier of itself and
 *                                        occurred_at (occurred_at when it had none);
 *                                        nothing emitted */
#include "engine.h"

int mcd_term_ended_blocked(struct mcd_cause *cx, struct mcd_subscription *s) {
        s->state = MCD_SS_SWITCH_ALLOWED;
        return mcd_emit_switch_allowed(cx, s, MCD_SWITCH_TERM_ENDED);
}

static void end_term(struct mcd_subscription *s, mcd_time_t at) {
        if (!s->has_term_end || at < s->term_end)
                s->term_end = at;
        s->has_term_end = true;
}

int mcd_rule_subscription_term_ended(struct mcd_cause *cx, const struct mcd_event *ev) {
        struct mcd_subscription *s = mcd_customer_find_sub(cx->c, ev->subscription_id);

        if (!s)
                return mcd_emit_rejected(cx, "SUBSCRIPTION_UNKNOWN");
        if (s->state == MCD_SS_SWITCH_BLOCKED)
                return mcd_term_ended_blocked(cx, s);
        end_term(s, ev->occurred_at);
        return 0;
}
