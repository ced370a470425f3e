/* samples.c -- sample events and outcomes of every type (samples.h), shared
 * by test_avro.c and fuzz/make_seeds.c so that the codec's round trips and
 * the fuzz corpus start from the same messages. */
#include <stddef.h>

#include "tests/samples.h"

struct mcd_event sample_event(enum mcd_event_type t) {
        static char *services[] = { "Exchange Online", "SharePoint Online", "Teams \xc3\xa9" };
        struct mcd_event ev = {
                .type = t,
                .event_id = "ev-1",
                .occurred_at = SAMPLE_T0,
                .customer_id = "c-1",
                .cloud = MCD_CLOUD_US_GOVERNMENT,
        };

        switch (t) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                ev.partner_id = "p-1";
                ev.indirect_reseller_id = "ir-9";
                ev.customer_is_csp_partner = true;
                break;
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                ev.partner_id = "p-1";
                break;
        case MCD_EV_RELATIONSHIP_REMOVED:
                ev.partner_id = "p-1";
                ev.reason = "customer asked";
                break;
        case MCD_EV_SUBSCRIPTION_REPORTED:
                ev.subscription_id = "s-1";
                ev.offer_name = "Microsoft 365 E3";
                ev.billing = MCD_BILLING_LICENSE_BASED;
                ev.channel = MCD_CHANNEL_CSP;
                ev.seller_partner_id = "p-0";
                ev.has_term_end = true;
                ev.term_end = SAMPLE_T0 + 86400000;
                break;
        case MCD_EV_SWITCH_REQUESTED:
                ev.subscription_id = "s-1";
                ev.target_partner_id = "p-1";
                break;
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                ev.subscription_id = "s-1";
                ev.csp_subscription_id = "csp-1";
                ev.partner_id = "p-1";
                break;
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                ev.subscription_id = "s-1";
                ev.scope = MCD_SCOPE_SOME_SERVICES;
                ev.services = services;
                ev.n_services = 3;
                break;
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                ev.subscription_id = "s-1";
                break;
        default:
                break;
        }
        return ev;
}

struct mcd_outcome sample_outcome(enum mcd_outcome_type t) {
        struct mcd_outcome o = {
                .type = t,
                .event_id = "ev-1#0",
                .caused_by = "ev-1",
                .customer_id = "c-1",
                .cloud = MCD_CLOUD_US_GOVERNMENT,
                .occurred_at = SAMPLE_T0,
                .partner_id = "p-1",
                .subscription_id = "s-1",
                .customer_state = MCD_CS_ACCEPTED,
                .message = "Something happened.",
        };

        switch (t) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                o.subscription_id = NULL;
                o.from_state = MCD_CS_REQUESTED;
                o.to_state = MCD_CS_ACCEPTED;
                break;
        case MCD_OUT_RESALE_REJECTED:
                o.subscription_id = NULL;
                o.reason = "CSP_TO_CSP_RESALE_NOT_SUPPORTED";
                break;
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                o.partner_id = NULL;
                o.billing = MCD_BILLING_USAGE_BASED;
                o.channel = MCD_CHANNEL_EA;
                break;
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                o.billing = MCD_BILLING_USAGE_BASED;
                o.channel = MCD_CHANNEL_THIRD_PARTY;
                o.next_action = MCD_NEXT_CREATE_AZURE_CSP_SUBSCRIPTION;
                break;
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                o.term_end = SAMPLE_T0 + 1000;
                o.channel = MCD_CHANNEL_OPEN;
                break;
        case MCD_OUT_SWITCH_ALLOWED:
                o.switch_reason = MCD_SWITCH_SUBSCRIPTION_CANCELLED;
                break;
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                o.csp_subscription_id = "csp-1";
                o.channel = MCD_CHANNEL_ADVISOR;
                o.coexists = true;
                break;
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                o.csp_subscription_id = NULL;
                break;
        case MCD_OUT_TRANSITION_REJECTED:
                o.reason = "SUBSCRIPTION_UNKNOWN";
                o.rejected_event_type = "SwitchRequested";
                break;
        default:
                break;
        }
        return o;
}
