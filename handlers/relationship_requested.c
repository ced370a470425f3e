/* relationship_requested.c -- CONTRACT.md "The rules", RelationshipRequested:
 *
 *   customer_is_csp_partner                  ResaleRejected; state unchanged
 *   state NONE or CANCELLED                  state REQUESTED; partner, reseller and
 *                                            cloud recorded; CustomerStateChanged
 *   active relationship with the same partner  nothing
 *   active relationship with another partner   TransitionRejected
 *                                            RELATIONSHIP_HELD_BY_OTHER_PARTNER */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static int resale_rejected(struct mcd_cause *cx) {
        const struct mcd_given g = {.reason = "CSP_TO_CSP_RESALE_NOT_SUPPORTED"};

        return mcd_emit_given(cx, MCD_OUT_RESALE_REJECTED, &g) ? 0 : -ENOMEM;
}

/* Replaces *dst with a copy of src (NULL allowed). */
static int replace(char **dst, const char *src) {
        char *copy = NULL;

        if (src) {
                copy = strdup(src);
                if (!copy)
                        return -ENOMEM;
        }
        free(*dst);
        *dst = copy;
        return 0;
}

static int record_request(struct mcd_cause *cx, const struct mcd_event *ev) {
        struct mcd_customer *c = cx->c;

        if (replace(&c->partner_id, ev->partner_id) < 0 ||
            replace(&c->indirect_reseller_id, ev->indirect_reseller_id) < 0)
                return -ENOMEM;
        return mcd_set_state(cx, MCD_CS_REQUESTED);
}

int mcd_rule_relationship_requested(struct mcd_cause *cx, const struct mcd_event *ev) {
        const struct mcd_customer *c = cx->c;

        if (ev->customer_is_csp_partner)
                return resale_rejected(cx);
        if (!mcd_relationship_active(c))
                return record_request(cx, ev);
        if (mcd_is_partner(c, ev->partner_id))
                return 0;
        return mcd_emit_rejected(cx, "RELATIONSHIP_HELD_BY_OTHER_PARTNER");
}
