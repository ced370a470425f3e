/* engine.h -- internal to handlers/: what the rule files share.
 *
 * A "cause" is one input event (or a timer) being applied: it numbers its
 * outcomes "<cause>#<n>" and fills their common fields.  Each event type's
 * rows of the contract table live in their own file and are reached through
 * one function, mcd_rule_<event>(); engine.c runs the steps around them
 * (duplicates, cloud, parking, settling, retrying parked events, stamping
 * customer_state and message). */
#ifndef MCD_ENGINE_H
#define MCD_ENGINE_H

#include "rules.h"

/* Returned by a rule (instead of 0) when the event has to wait for an
 * accepted relationship.  A rule that parks has changed nothing. */
#define MCD_RULE_PARK 1

struct mcd_cause {
        struct mcd_customer *c;
        struct mcd_outcomes *out;
        const struct mcd_rules_config *cfg;
        const char *id;               /* caused_by */
        mcd_time_t occurred_at;
        const char *partner_id;       /* the cause's own partner_id field, or NULL */
        const char *subscription_id;  /* the cause's subscription_id, or NULL */
        const char *event_type;       /* rejected_event_type of its rejections */
        size_t first;                 /* index in out of its first outcome */
        uint32_t n;                   /* number of its next outcome */
};

typedef int (*mcd_rule_fn)(struct mcd_cause *cx, const struct mcd_event *ev);

/* The rules, one per event type (one file each). */
int mcd_rule_relationship_requested(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_relationship_accepted(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_relationship_removed(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_subscription_reported(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_switch_requested(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_csp_subscription_created(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_subscription_cancelled(struct mcd_cause *cx, const struct mcd_event *ev);
int mcd_rule_subscription_term_ended(struct mcd_cause *cx, const struct mcd_event *ev);

/* The SubscriptionTermEnded row for a SWITCH_BLOCKED subscription; also what
 * its term_end timer does when it fires. */
int mcd_term_ended_blocked(struct mcd_cause *cx, struct mcd_subscription *s);

/* State predicates. */
bool mcd_relationship_active(const struct mcd_customer *c);   /* REQUESTED, ACCEPTED, MIGRATED */
bool mcd_relationship_accepted(const struct mcd_customer *c); /* ACCEPTED, MIGRATED */
bool mcd_is_partner(const struct mcd_customer *c, const char *partner_id);
bool mcd_sub_closed(const struct mcd_subscription *s);        /* MIGRATED, CANCELLED */
bool mcd_sub_in_flight(const struct mcd_subscription *s);

/* Outcome emission: each appends one outcome with its common fields filled
 * (customer_state and message are stamped when the cause is finished).
 * 0 or -ENOMEM. */
struct mcd_outcome *mcd_emit(struct mcd_cause *cx, enum mcd_outcome_type type, const char *subscription_id);
/* The strings an outcome is given when it is emitted, beside those of its
 * cause and customer (NULL: none).  They are copied into the outcome's one
 * block (mcd_outcome.strings): every string of an outcome but its message
 * (stamped later) is set here and nowhere else. */
struct mcd_given {
        const char *subscription_id, *reason, *csp_subscription_id, *rejected_event_type;
};
struct mcd_outcome *mcd_emit_given(struct mcd_cause *cx, enum mcd_outcome_type type, const struct mcd_given *g);
int mcd_set_state(struct mcd_cause *cx, enum mcd_customer_state to);
int mcd_emit_rejected(struct mcd_cause *cx, const char *reason);
int mcd_emit_support_enabled(struct mcd_cause *cx, const struct mcd_subscription *s);
int mcd_emit_switch_allowed(struct mcd_cause *cx, const struct mcd_subscription *s,
                            enum mcd_switch_reason reason);
int mcd_emit_migrated(struct mcd_cause *cx, const struct mcd_subscription *s, const char *csp_subscription_id);

#endif
