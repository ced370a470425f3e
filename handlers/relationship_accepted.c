/* relationship_accepted.c -- CONTRACT.md "The rules", RelationshipAccepted:
 *
 *   state REQUESTED, same partner        state ACCEPTED; CustomerStateChanged; then
 *                                        every REPORTED subscription becomes SUPPORTED
 *                                        with MultiChannelSupportEnabled, in the order
 *                                        they were reported; then parked events are
 *                                        retried (by the engine, as the state changed)
 *   state ACCEPTED or MIGRATED, same partner  nothing
 *   state NONE or CANCELLED              TransitionRejected NO_PENDING_REQUEST
 *   another partner                      TransitionRejected RELATIONSHIP_HELD_BY_OTHER_PARTNER
 *
 * NONE/CANCELLED is checked before the partner: with no pending request
 * there is no partner to compare with. */
#include "engine.h"

static int accept_request(struct mcd_cause *cx) {
        struct mcd_customer *c = cx->c;
        int r = mcd_set_state(cx, MCD_CS_ACCEPTED);

        for (size_t i = 0; r >= 0 && i < c->n_subs; i++) {
                struct mcd_subscription *s = &c->subs[i];
                if (s->state != MCD_SS_REPORTED)
                        continue;
                s->state = MCD_SS_SUPPORTED;
                r = mcd_emit_support_enabled(cx, s);
        }
        return r;
}

int mcd_rule_relationship_accepted(struct mcd_cause *cx, const struct mcd_event *ev) {
        const struct mcd_customer *c = cx->c;

        if (c->state == MCD_CS_NONE || c->state == MCD_CS_CANCELLED)
                return mcd_emit_rejected(cx, "NO_PENDING_REQUEST");
        if (!mcd_is_partner(c, ev->partner_id))
                return mcd_emit_rejected(cx, "RELATIONSHIP_HELD_BY_OTHER_PARTNER");
        if (c->state == MCD_CS_REQUESTED)
                return accept_request(cx);
        return 0;
}
