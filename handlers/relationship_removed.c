/* relationship_removed.c -- CONTRACT.md "The rules", RelationshipRemoved:
 *
 *   active relationship, same partner   state CANCELLED; CustomerStateChanged;
 *                                       subscriptions not MIGRATED or CANCELLED go
 *                                       back to REPORTED, their timers are dropped
 *                                       (a timer exists only while SWITCH_BLOCKED)
 *   no active relationship              TransitionRejected NO_ACTIVE_RELATIONSHIP
 *   another partner                     TransitionRejected RELATIONSHIP_HELD_BY_OTHER_PARTNER */
#include "engine.h"

static int remove_relationship(struct mcd_cause *cx) {
        struct mcd_customer *c = cx->c;

        for (size_t i = 0; i < c->n_subs; i++)
                if (!mcd_sub_closed(&c->subs[i]))
                        c->subs[i].state = MCD_SS_REPORTED;
        return mcd_set_state(cx, MCD_CS_CANCELLED);
}

int mcd_rule_relationship_removed(struct mcd_cause *cx, const struct mcd_event *ev) {
        const struct mcd_customer *c = cx->c;

        if (!mcd_relationship_active(c))
                return mcd_emit_rejected(cx, "NO_ACTIVE_RELATIONSHIP");
        if (!mcd_is_partner(c, ev->partner_id))
                return mcd_emit_rejected(cx, "RELATIONSHIP_HELD_BY_OTHER_PARTNER");
        return remove_relationship(cx);
}
