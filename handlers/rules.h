/* rules.h -- the multi-channel rules engine: pure functions.
 *
 * State + event + time in, new state + outcomes out.  No I/O, no clock, no
 * globals: the caller (replay, or the daemon) owns the customer state, decides
 * what "now" is, and persists or prints what comes out.  Every rule of
 * CONTRACT.md "The rules" lives under handlers/, one file per event type.
 *
 * Outcomes are appended to `out` in the contract's order, each complete:
 * ids "<caused_by>#<n>", customer_state after the cause's settling, and a
 * message.  On -ENOMEM the customer may be partly updated; callers treat that
 * as fatal for the batch. */
#ifndef MCD_RULES_H
#define MCD_RULES_H

#include "model.h"

/* The rules' settings (CONTRACT.md "Parking" and "Bounds"). */
struct mcd_rules_config {
        mcd_time_t park_grace;       /* ms; contract default 10 minutes */
        mcd_time_t dedup_window;     /* ms; seen ids kept this far behind the latest */
        size_t max_seen_ids;         /* limits.seen_ids, at least 1 */
        size_t max_subscriptions;    /* limits.subscriptions, at least 1 */
        size_t max_parked;           /* limits.parked, at least 1 */
};

#define MCD_PARK_GRACE_DEFAULT ((mcd_time_t)10 * 60 * 1000)
#define MCD_DEDUP_WINDOW_DEFAULT ((mcd_time_t)30 * 24 * 3600 * 1000)
#define MCD_MAX_SEEN_IDS_DEFAULT 10000
#define MCD_MAX_SUBSCRIPTIONS_DEFAULT 1000
#define MCD_MAX_PARKED_DEFAULT 100
#define MCD_RULES_CONFIG_DEFAULT                                                                        \
        ((struct mcd_rules_config){.park_grace = MCD_PARK_GRACE_DEFAULT,                                \
                                   .dedup_window = MCD_DEDUP_WINDOW_DEFAULT,                            \
                                   .max_seen_ids = MCD_MAX_SEEN_IDS_DEFAULT,                            \
                                   .max_subscriptions = MCD_MAX_SUBSCRIPTIONS_DEFAULT,                  \
                                   .max_parked = MCD_MAX_PARKED_DEFAULT})

/* Applies one input event for customer c (c->customer_id must equal
 * ev->customer_id).  `now` is the engine's clock: the wall clock in the
 * daemon, stream time in replay; it sets the park deadline of an event parked
 * now.  cfg NULL means MCD_RULES_CONFIG_DEFAULT.  Returns 0 or a negative
 * errno. */
int mcd_apply_event(struct mcd_customer *c, const struct mcd_event *ev, mcd_time_t now,
                    const struct mcd_rules_config *cfg, struct mcd_outcomes *out);

/* The customer's earliest pending due item: a blocked switch's term_end timer
 * or a parked event's deadline.  Returns false when there is none.  Ties are
 * broken by subscription id, then timers before deadlines, then arrival order;
 * *subscription_id (borrowed from c) tells the caller the tie-break key that
 * the contract orders across customers. */
bool mcd_next_due(const struct mcd_customer *c, mcd_time_t *due, const char **subscription_id);

/* Fires the single earliest due item if it is due at or before `now`: a
 * timer emits SwitchAllowed TERM_ENDED (cause "timer:<c>:<s>:term_end"), an
 * expired parked event is rejected NO_ACCEPTED_RELATIONSHIP.  Returns 1 when
 * something fired, 0 when nothing is due, or a negative errno. */
int mcd_fire_next_due(struct mcd_customer *c, mcd_time_t now,
                      const struct mcd_rules_config *cfg, struct mcd_outcomes *out);

/* The timer cause id of a subscription: "timer:<customer>:<subscription>:term_end".
 * Returns a heap string or NULL. */
char *mcd_timer_cause(const char *customer_id, const char *subscription_id);

/* One English sentence a person can act on, for an outcome whose fields are
 * all set (messages.c).  Returns a heap string or NULL. */
char *mcd_outcome_message(const struct mcd_outcome *o);

#endif
