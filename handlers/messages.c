/* messages.c -- the `message` of every outcome: one English sentence a person
 * can act on.  Built only from the outcome's own fields, so the same outcome
 * always reads the same (no clock, no locale). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "timefmt.h"

/* The formatted message in a malloc'd string, or NULL.  Formatted once
 * into a buffer on the stack, which holds every message but those with
 * very long ids, and formatted again only when it does not fit. */
__attribute__((format(printf, 1, 2))) static char *text(const char *fmt, ...) {
        char buf[512];
        va_list ap;
        int len;
        char *s;

        va_start(ap, fmt);
        len = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (len < 0)
                return NULL;
        s = malloc((size_t)len + 1);
        if (!s)
                return NULL;
        if ((size_t)len < sizeof(buf)) {
                memcpy(s, buf, (size_t)len + 1);
                return s;
        }
        va_start(ap, fmt);
        vsnprintf(s, (size_t)len + 1, fmt, ap);
        va_end(ap);
        return s;
}

static const char *or(const char *s, const char *fallback) {
        return s ? s : fallback;
}

static const char *cloud_title(enum mcd_cloud cloud) {
        return cloud == MCD_CLOUD_US_GOVERNMENT ? "Partner Center for Microsoft Cloud for US Government"
                                                : "the commercial Partner Center";
}

static const char *channel_title(enum mcd_channel ch) {
        switch (ch) {
        case MCD_CHANNEL_DIRECT:
                return "direct";
        case MCD_CHANNEL_ADVISOR:
                return "Advisor";
        case MCD_CHANNEL_OPEN:
                return "Open";
        case MCD_CHANNEL_EA:
                return "EA";
        case MCD_CHANNEL_THIRD_PARTY:
                return "third-party";
        case MCD_CHANNEL_CSP:
                return "CSP";
        default:
                return "legacy";
        }
}

static const char *billing_title(enum mcd_billing b) {
        return b == MCD_BILLING_USAGE_BASED ? "usage-based" : "license-based";
}

static char *state_changed(const struct mcd_outcome *o) {
        const char *c = or(o->customer_id, "?"), *p = or(o->partner_id, "its partner");

        switch (o->to_state) {
        case MCD_CS_REQUESTED:
                return text("Customer %s has a pending reseller relationship request from partner %s; "
                            "the customer must accept it before its subscriptions can be managed.", c, p);
        case MCD_CS_ACCEPTED:
                if (o->from_state == MCD_CS_MIGRATED)
                        return text("Customer %s has a subscription on its way to partner %s again; "
                                    "finish moving it to complete the migration.", c, p);
                return text("Customer %s accepted the reseller relationship with partner %s; "
                            "the partner can now manage its reported subscriptions.", c, p);
        case MCD_CS_MIGRATED:
                return text("Every subscription of customer %s on its way to partner %s has moved; "
                            "nothing more needs to be done.", c, p);
        case MCD_CS_CANCELLED:
                return text("The reseller relationship between customer %s and partner %s was removed; "
                            "a partner must request a new relationship to manage its subscriptions.", c, p);
        default:
                return text("Customer %s went from %s to %s; no action is needed.", c,
                            mcd_customer_state_name(o->from_state), mcd_customer_state_name(o->to_state));
        }
}

static char *support_enabled(const struct mcd_outcome *o) {
        const char *s = or(o->subscription_id, "?"), *p = or(o->partner_id, "the partner");

        switch (o->next_action) {
        case MCD_NEXT_REQUEST_SWITCH:
                return text("Partner %s can now support subscription %s, held through another CSP partner; "
                            "request a switch to move it.", p, s);
        case MCD_NEXT_CREATE_AZURE_CSP_SUBSCRIPTION:
                return text("Partner %s can now support Azure subscription %s bought through the %s channel; "
                            "create a new Azure CSP subscription in Partner Center to move its services.",
                            p, s, channel_title(o->channel));
        default:
                return text("Partner %s can now manage and support %s subscription %s, bought through the %s "
                            "channel, as it is.", p, billing_title(o->billing), s, channel_title(o->channel));
        }
}

static char *switch_allowed(const struct mcd_outcome *o) {
        const char *s = or(o->subscription_id, "?"), *p = or(o->partner_id, "the partner");

        switch (o->switch_reason) {
        case MCD_SWITCH_TERM_ENDED:
                return text("The term of subscription %s has ended, so it can now be switched to partner %s; "
                            "create its CSP subscription to complete the move.", s, p);
        case MCD_SWITCH_SUBSCRIPTION_CANCELLED:
                return text("Subscription %s was cancelled, so it can now be switched to partner %s at once; "
                            "create its CSP subscription to complete the move.", s, p);
        default:
                return text("Usage-based subscription %s can be switched to partner %s now; "
                            "create its CSP subscription to complete the move.", s, p);
        }
}

static char *rejected(const struct mcd_outcome *o) {
        const char *r = or(o->reason, "?"), *t = or(o->rejected_event_type, "event");
        const char *c = or(o->customer_id, "?"), *s = or(o->subscription_id, "?"), *p = or(o->partner_id, "?");

        if (strcmp(r, "RELATIONSHIP_HELD_BY_OTHER_PARTNER") == 0)
                return text("The %s from partner %s was refused because customer %s has an active relationship "
                            "with another partner; that relationship must be removed first.", t, p, c);
        if (strcmp(r, "NO_PENDING_REQUEST") == 0)
                return text("The %s from partner %s was refused because customer %s has no pending relationship "
                            "request; the partner must request a relationship first.", t, p, c);
        if (strcmp(r, "NO_ACTIVE_RELATIONSHIP") == 0)
                return text("The %s from partner %s was refused because customer %s has no active relationship "
                            "to remove; no action is needed.", t, p, c);
        if (strcmp(r, "ALREADY_WITH_PARTNER") == 0)
                return text("Subscription %s is already sold through CSP by partner %s, the customer's "
                            "relationship partner; there is nothing to move.", s, p);
        if (strcmp(r, "SUBSCRIPTION_UNKNOWN") == 0)
                return text("The %s for subscription %s was refused because that subscription was never "
                            "reported for customer %s; report the subscription first.", t, s, c);
        if (strcmp(r, "TARGET_NOT_RELATIONSHIP_PARTNER") == 0)
                return text("The switch of subscription %s was refused because its target is not partner %s, "
                            "the customer's relationship partner; request the switch to the relationship "
                            "partner, or have the target partner request a relationship first.", s, p);
        if (strcmp(r, "SUBSCRIPTION_CLOSED") == 0)
                return text("The %s for subscription %s was refused because the subscription is already "
                            "migrated or cancelled; no action is needed.", t, s);
        if (strcmp(r, "CREATE_AZURE_CSP_SUBSCRIPTION_INSTEAD") == 0)
                return text("Usage-based subscription %s cannot be switched to partner %s; create a new Azure "
                            "CSP subscription for it in Partner Center instead.", s, p);
        if (strcmp(r, "PARTNER_MISMATCH") == 0)
                return text("The CSP subscription replacing %s was refused because partner %s is not the "
                            "customer's relationship partner; create it under the relationship partner.", s, p);
        if (strcmp(r, "SWITCH_BLOCKED_UNTIL_TERM_END") == 0)
                return text("The CSP subscription replacing %s was refused because its switch is blocked until "
                            "the end of its term; wait for the term to end, or cancel the subscription to move "
                            "earlier.", s);
        if (strcmp(r, "SWITCH_NOT_REQUESTED") == 0)
                return text("The CSP subscription replacing %s was refused because no switch was requested for "
                            "it; request the switch first.", s);
        if (strcmp(r, "NO_ACCEPTED_RELATIONSHIP") == 0)
                return text("The %s for subscription %s was dropped because customer %s did not accept a "
                            "relationship in time; have the customer accept the relationship, then send it "
                            "again.", t, s, c);
        if (strcmp(r, "CLOUD_MISMATCH") == 0)
                return text("The %s for customer %s was refused because the customer belongs to %s and the two "
                            "clouds never mix; send it from the customer's own Partner Center.", t, c,
                            cloud_title(o->cloud));
        if (strcmp(r, "EVENT_TOO_OLD") == 0)
                return text("The %s for customer %s was refused because it happened before the customer's "
                            "duplicate-detection horizon, so it could repeat an event already applied; send a "
                            "new event with a current time if it is still needed.", t, c);
        if (strcmp(r, "SUBSCRIPTION_LIMIT") == 0)
                return text("Subscription %s was not recorded because customer %s already has the most "
                            "subscriptions one customer may hold; raise limits.subscriptions if that is "
                            "expected.", s, c);
        if (strcmp(r, "PARK_LIMIT") == 0)
                return text("The %s for subscription %s was refused because customer %s already has the most "
                            "events that may wait for an accepted relationship; have the customer accept the "
                            "relationship, then send it again.", t, s, c);
        return text("The %s for customer %s was refused (%s).", t, c, r);
}

char *mcd_outcome_message(const struct mcd_outcome *o) {
        char when[MCD_TIME_BUFSZ];
        const char *c = or(o->customer_id, "?"), *s = or(o->subscription_id, "?");
        const char *p = or(o->partner_id, "the partner");

        switch (o->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                return state_changed(o);
        case MCD_OUT_RESALE_REJECTED:
                return text("Partner %s cannot resell to customer %s because the customer is itself a CSP "
                            "partner, and CSP-to-CSP resale is not supported; do not request this relationship.",
                            p, c);
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                return text("Subscription %s (%s, %s channel) of customer %s has no partner relationship; a CSP "
                            "partner must request a reseller relationship before it can manage it.", s,
                            billing_title(o->billing), channel_title(o->channel), c);
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                return support_enabled(o);
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                return text("Switching subscription %s to partner %s is blocked until %s, the end of its %s term; "
                            "cancel the subscription to move earlier.", s, p, mcd_time_format(o->term_end, when),
                            channel_title(o->channel));
        case MCD_OUT_SWITCH_ALLOWED:
                return switch_allowed(o);
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                return text("Azure CSP subscription %s of partner %s now coexists with the %s subscription %s; "
                            "cancel the legacy subscription once its services have moved.",
                            or(o->csp_subscription_id, "?"), p, channel_title(o->channel), s);
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                if (o->csp_subscription_id)
                        return text("Subscription %s has fully moved to partner %s as CSP subscription %s; "
                                    "nothing more needs to be done.", s, p, o->csp_subscription_id);
                return text("Subscription %s has fully moved to partner %s; nothing more needs to be done.", s, p);
        case MCD_OUT_TRANSITION_REJECTED:
                return rejected(o);
        default:
                return text("Customer %s has a new outcome; no action is needed.", c);
        }
}
