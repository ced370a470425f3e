/* model.h -- the domain model of the multi-channel rules engine.
 *
 * Everything the rules engine knows about: input events, customer state,
 * subscriptions, parked events and derived outcomes.  These types are plain
 * data; every string is owned by the struct that holds it (heap allocated,
 * freed by the matching *_free / *_clear function).  No I/O, no clock, no
 * globals: see rules.h for the engine itself. */
#ifndef MCD_MODEL_H
#define MCD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seen.h"

/* Milliseconds since the Unix epoch, UTC (Avro timestamp-millis). */
typedef int64_t mcd_time_t;

/* The range an ISO-8601 timestamp can spell: 0000-01-01 .. 9999-12-31. */
#define MCD_TIME_MIN (-62167219200000LL)
#define MCD_TIME_MAX 253402300799999LL

/* Whether t is in that range.  This function can't fail. */
static inline bool mcd_time_in_range(mcd_time_t t) {
        return t >= MCD_TIME_MIN && t <= MCD_TIME_MAX;
}

enum mcd_cloud { MCD_CLOUD_COMMERCIAL, MCD_CLOUD_US_GOVERNMENT, MCD_CLOUD__COUNT };

enum mcd_customer_state {
        MCD_CS_NONE,
        MCD_CS_REQUESTED,
        MCD_CS_ACCEPTED,
        MCD_CS_MIGRATED,
        MCD_CS_CANCELLED,
        MCD_CS__COUNT
};

enum mcd_sub_state {
        MCD_SS_REPORTED,
        MCD_SS_SUPPORTED,
        MCD_SS_SWITCH_BLOCKED,
        MCD_SS_SWITCH_ALLOWED,
        MCD_SS_CSP_CREATED,
        MCD_SS_MIGRATED,
        MCD_SS_CANCELLED,
        MCD_SS__COUNT
};

enum mcd_billing { MCD_BILLING_LICENSE_BASED, MCD_BILLING_USAGE_BASED, MCD_BILLING__COUNT };

enum mcd_channel {
        MCD_CHANNEL_DIRECT,
        MCD_CHANNEL_ADVISOR,
        MCD_CHANNEL_OPEN,
        MCD_CHANNEL_EA,
        MCD_CHANNEL_THIRD_PARTY,
        MCD_CHANNEL_CSP,
        MCD_CHANNEL__COUNT
};

enum mcd_cancel_scope { MCD_SCOPE_SOME_SERVICES, MCD_SCOPE_ENTIRE_SUBSCRIPTION, MCD_SCOPE__COUNT };

enum mcd_next_action {
        MCD_NEXT_MANAGE_AS_IS,
        MCD_NEXT_CREATE_AZURE_CSP_SUBSCRIPTION,
        MCD_NEXT_REQUEST_SWITCH,
        MCD_NEXT__COUNT
};

enum mcd_switch_reason {
        MCD_SWITCH_TERM_ENDED,
        MCD_SWITCH_SUBSCRIPTION_CANCELLED,
        MCD_SWITCH_USAGE_BASED,
        MCD_SWITCH__COUNT
};

/* Input event types: the payload records of RelationshipEvent and
 * SubscriptionEvent.  The first three are relationship events. */
enum mcd_event_type {
        MCD_EV_RELATIONSHIP_REQUESTED,
        MCD_EV_RELATIONSHIP_ACCEPTED,
        MCD_EV_RELATIONSHIP_REMOVED,
        MCD_EV_SUBSCRIPTION_REPORTED,
        MCD_EV_SWITCH_REQUESTED,
        MCD_EV_CSP_SUBSCRIPTION_CREATED,
        MCD_EV_SUBSCRIPTION_CANCELLED,
        MCD_EV_SUBSCRIPTION_TERM_ENDED,
        MCD_EV__COUNT
};

enum mcd_outcome_type {
        MCD_OUT_CUSTOMER_STATE_CHANGED,
        MCD_OUT_RESALE_REJECTED,
        MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED,
        MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED,
        MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END,
        MCD_OUT_SWITCH_ALLOWED,
        MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED,
        MCD_OUT_SUBSCRIPTION_MIGRATED,
        MCD_OUT_TRANSITION_REJECTED,
        MCD_OUT__COUNT
};

/* One input event, flat: the common fields plus the union of all payload
 * fields.  Fields that the event's type does not have are NULL / zero.
 * Which fields each type carries is the contract's table; mcd_event_validate()
 * checks them. */
struct mcd_event {
        enum mcd_event_type type;
        char *event_id;
        mcd_time_t occurred_at;
        char *customer_id;
        enum mcd_cloud cloud;

        char *partner_id;            /* Requested, Accepted, Removed, CspSubscriptionCreated */
        char *indirect_reseller_id;  /* Requested, optional */
        bool customer_is_csp_partner;/* Requested */
        char *reason;                /* Removed, optional */

        char *subscription_id;       /* every subscription event */
        char *offer_name;            /* Reported */
        enum mcd_billing billing;    /* Reported */
        enum mcd_channel channel;    /* Reported */
        char *seller_partner_id;     /* Reported, required when channel is CSP */
        bool has_term_end;           /* Reported, required when LICENSE_BASED */
        mcd_time_t term_end;

        char *target_partner_id;     /* SwitchRequested */
        char *csp_subscription_id;   /* CspSubscriptionCreated */
        enum mcd_cancel_scope scope; /* Cancelled */
        char **services;             /* Cancelled, may be empty */
        size_t n_services;
        char *strings;               /* when set, one block holding every string above and services'
                                        items (the Avro decoder's); NULL: each is an allocation of its own */
};

struct mcd_subscription {
        char *subscription_id;
        char *offer_name;
        enum mcd_billing billing;
        enum mcd_channel channel;
        char *seller_partner_id;     /* NULL unless channel is CSP */
        bool has_term_end;
        mcd_time_t term_end;
        enum mcd_sub_state state;
        /* Outcomes already emitted by this subscription's term_end timer
         * cause, so a timer armed a second time never reuses an outcome id.
         * The timer itself is armed exactly while state is SWITCH_BLOCKED,
         * due at term_end: it is derived, not stored. */
        uint32_t timer_outcomes;
};

struct mcd_parked {
        struct mcd_event event;      /* owned copy */
        mcd_time_t deadline;         /* set once, when first parked */
};

struct mcd_customer {
        char *customer_id;
        bool has_cloud;              /* fixed by the first event */
        enum mcd_cloud cloud;
        enum mcd_customer_state state;
        char *partner_id;            /* latest applied request; kept after removal */
        char *indirect_reseller_id;

        struct mcd_subscription *subs;   /* in the order they were reported */
        size_t n_subs, cap_subs;

        struct mcd_parked *parked;       /* in arrival order */
        size_t n_parked, cap_parked;

        struct mcd_seen seen;            /* event ids seen (rule 1), bounded */
};

struct mcd_outcome {
        char *event_id;              /* "<caused_by>#<n>" */
        char *caused_by;
        char *customer_id;
        enum mcd_cloud cloud;
        mcd_time_t occurred_at;
        char *partner_id;            /* may be NULL */
        char *subscription_id;       /* may be NULL */
        enum mcd_customer_state customer_state;
        char *message;
        enum mcd_outcome_type type;

        /* payload, by type */
        enum mcd_customer_state from_state, to_state; /* CustomerStateChanged */
        char *reason;                /* ResaleRejected, TransitionRejected */
        enum mcd_billing billing;    /* RequestRequired, SupportEnabled */
        enum mcd_channel channel;    /* RequestRequired, SupportEnabled, SwitchBlocked;
                                        legacy_channel of AzureCspSubscriptionCreated */
        enum mcd_next_action next_action;
        mcd_time_t term_end;         /* SwitchBlockedUntilTermEnd */
        enum mcd_switch_reason switch_reason;
        char *csp_subscription_id;   /* AzureCspSubscriptionCreated; SubscriptionMigrated (may be NULL) */
        bool coexists;               /* AzureCspSubscriptionCreated */
        char *rejected_event_type;   /* TransitionRejected */
        char *strings;               /* when set, one block holding every string above but message
                                        (the rules' outcomes, engine.c); NULL: each is an allocation
                                        of its own */
};

struct mcd_outcomes {
        struct mcd_outcome *v;
        size_t n, cap;
};

/* Names exactly as the contract spells them (Avro enum symbols and record
 * names).  *_from_name returns a negative errno (-EINVAL) for an unknown name,
 * else the value. */
const char *mcd_cloud_name(enum mcd_cloud v);
const char *mcd_customer_state_name(enum mcd_customer_state v);
const char *mcd_sub_state_name(enum mcd_sub_state v);
const char *mcd_billing_name(enum mcd_billing v);
const char *mcd_channel_name(enum mcd_channel v);
const char *mcd_scope_name(enum mcd_cancel_scope v);
const char *mcd_next_action_name(enum mcd_next_action v);
const char *mcd_switch_reason_name(enum mcd_switch_reason v);
const char *mcd_event_type_name(enum mcd_event_type v);
const char *mcd_outcome_type_name(enum mcd_outcome_type v);
int mcd_cloud_from_name(const char *s);
int mcd_customer_state_from_name(const char *s);
int mcd_sub_state_from_name(const char *s);
int mcd_billing_from_name(const char *s);
int mcd_channel_from_name(const char *s);
int mcd_scope_from_name(const char *s);
int mcd_next_action_from_name(const char *s);
int mcd_switch_reason_from_name(const char *s);
int mcd_event_type_from_name(const char *s);
int mcd_outcome_type_from_name(const char *s);

static inline bool mcd_event_is_relationship(enum mcd_event_type t) {
        return t <= MCD_EV_RELATIONSHIP_REMOVED;
}

/* The most bytes an identifier may have (CONTRACT.md "Bounds"); a longer
 * one is bad input.  A subscription keeps at most MCD_OFFER_NAME_KEPT bytes
 * of its offer name (cut at a character boundary): it is shown, never
 * matched, and this bounds a customer's state. */
#define MCD_ID_MAX 128
#define MCD_OFFER_NAME_KEPT 128

/* Checks the fields an event of its type must carry (the contract's "required
 * field missing for its case") and the length of its identifiers.  Returns 0,
 * or -EINVAL with *why set to a static English phrase such as "term_end is
 * required for a LICENSE_BASED subscription". */
int mcd_event_validate(const struct mcd_event *ev, const char **why);

/* Deep copy; 0 or -ENOMEM. */
int mcd_event_copy(struct mcd_event *dst, const struct mcd_event *src);
/* Frees the strings of ev and zeroes it (ev itself is not freed). */
void mcd_event_clear(struct mcd_event *ev);

int mcd_customer_init(struct mcd_customer *c, const char *customer_id);
void mcd_customer_clear(struct mcd_customer *c);
struct mcd_subscription *mcd_customer_find_sub(const struct mcd_customer *c, const char *subscription_id);
bool mcd_customer_has_seen(const struct mcd_customer *c, const char *event_id);
/* Records event_id as seen at occurred_at (see seen.h).  0 or -ENOMEM. */
int mcd_customer_mark_seen(struct mcd_customer *c, const char *event_id, mcd_time_t occurred_at);
/* Appends (deep copies) a subscription / parked event; used by the engine and
 * by state deserialisers.  0 or -ENOMEM. */
int mcd_customer_add_sub(struct mcd_customer *c, const struct mcd_subscription *s);
int mcd_customer_add_parked(struct mcd_customer *c, const struct mcd_event *ev, mcd_time_t deadline);
void mcd_customer_remove_parked(struct mcd_customer *c, size_t i);

void mcd_outcome_clear(struct mcd_outcome *o);
int mcd_outcome_copy(struct mcd_outcome *dst, const struct mcd_outcome *src);
void mcd_outcomes_init(struct mcd_outcomes *os);
/* Appends a zeroed outcome and returns it, or NULL on allocation failure. */
struct mcd_outcome *mcd_outcomes_push(struct mcd_outcomes *os);
void mcd_outcomes_clear(struct mcd_outcomes *os);   /* frees every outcome, keeps nothing */

#endif
