/* test_rules.c -- unit tests of the rules engine (handlers/), one named test
 * per row of CONTRACT.md "The rules", plus the steps around them: duplicates,
 * cloud, settling, parking, timers, outcome ids, order and common fields.
 * Events are built in C directly; output is TAP (tests/tap.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/rules.h"
#include "handlers/timefmt.h"
#include "tests/tap.h"

#define MIN ((mcd_time_t)60 * 1000)

/* ----------------------------------------------------------- fixture -- */

struct fx {
        struct mcd_customer c;
        struct mcd_outcomes out;
        struct mcd_rules_config cfg;
        int rc;                         /* of the last call */
};

static mcd_time_t at(const char *s) {
        mcd_time_t t = 0;
        if (mcd_time_parse(s, &t) < 0)
                abort();
        return t;
}

static void fx_init(struct fx *f) {
        memset(f, 0, sizeof(*f));
        if (mcd_customer_init(&f->c, "c-1") < 0)
                abort();
        mcd_outcomes_init(&f->out);
        f->cfg = MCD_RULES_CONFIG_DEFAULT;
}

static void fx_done(struct fx *f) {
        mcd_customer_clear(&f->c);
        mcd_outcomes_clear(&f->out);
}

static struct mcd_event ev_base(enum mcd_event_type type, const char *id, const char *when) {
        return (struct mcd_event){
                .type = type,
                .event_id = (char *)id,
                .occurred_at = at(when),
                .customer_id = (char *)"c-1",
                .cloud = MCD_CLOUD_COMMERCIAL,
        };
}

static struct mcd_event requested(const char *id, const char *when, const char *partner) {
        struct mcd_event ev = ev_base(MCD_EV_RELATIONSHIP_REQUESTED, id, when);
        ev.partner_id = (char *)partner;
        return ev;
}

static struct mcd_event accepted(const char *id, const char *when, const char *partner) {
        struct mcd_event ev = ev_base(MCD_EV_RELATIONSHIP_ACCEPTED, id, when);
        ev.partner_id = (char *)partner;
        return ev;
}

static struct mcd_event removed(const char *id, const char *when, const char *partner) {
        struct mcd_event ev = ev_base(MCD_EV_RELATIONSHIP_REMOVED, id, when);
        ev.partner_id = (char *)partner;
        return ev;
}

/* term_end NULL: none (usage-based). */
static struct mcd_event reported(const char *id, const char *when, const char *sub, enum mcd_billing billing,
                                 enum mcd_channel channel, const char *seller, const char *term_end) {
        struct mcd_event ev = ev_base(MCD_EV_SUBSCRIPTION_REPORTED, id, when);
        ev.subscription_id = (char *)sub;
        ev.offer_name = (char *)"Offer";
        ev.billing = billing;
        ev.channel = channel;
        ev.seller_partner_id = (char *)seller;
        ev.has_term_end = term_end != NULL;
        ev.term_end = term_end ? at(term_end) : 0;
        return ev;
}

static struct mcd_event license(const char *id, const char *when, const char *sub, const char *term_end) {
        return reported(id, when, sub, MCD_BILLING_LICENSE_BASED, MCD_CHANNEL_EA, NULL, term_end);
}

static struct mcd_event azure(const char *id, const char *when, const char *sub) {
        return reported(id, when, sub, MCD_BILLING_USAGE_BASED, MCD_CHANNEL_EA, NULL, NULL);
}

static struct mcd_event azure_csp(const char *id, const char *when, const char *sub, const char *seller) {
        return reported(id, when, sub, MCD_BILLING_USAGE_BASED, MCD_CHANNEL_CSP, seller, NULL);
}

static struct mcd_event switch_req(const char *id, const char *when, const char *sub, const char *target) {
        struct mcd_event ev = ev_base(MCD_EV_SWITCH_REQUESTED, id, when);
        ev.subscription_id = (char *)sub;
        ev.target_partner_id = (char *)target;
        return ev;
}

static struct mcd_event csp_created(const char *id, const char *when, const char *sub, const char *csp,
                                    const char *partner) {
        struct mcd_event ev = ev_base(MCD_EV_CSP_SUBSCRIPTION_CREATED, id, when);
        ev.subscription_id = (char *)sub;
        ev.csp_subscription_id = (char *)csp;
        ev.partner_id = (char *)partner;
        return ev;
}

static struct mcd_event cancelled(const char *id, const char *when, const char *sub, enum mcd_cancel_scope scope) {
        struct mcd_event ev = ev_base(MCD_EV_SUBSCRIPTION_CANCELLED, id, when);
        ev.subscription_id = (char *)sub;
        ev.scope = scope;
        return ev;
}

static struct mcd_event term_ended(const char *id, const char *when, const char *sub) {
        struct mcd_event ev = ev_base(MCD_EV_SUBSCRIPTION_TERM_ENDED, id, when);
        ev.subscription_id = (char *)sub;
        return ev;
}

/* Applies ev with the clock at its occurred_at; the outcomes of this call
 * only are left in f->out. */
static void apply(struct fx *f, struct mcd_event ev) {
        mcd_outcomes_clear(&f->out);
        f->rc = mcd_apply_event(&f->c, &ev, ev.occurred_at, &f->cfg, &f->out);
        if (f->rc < 0)
                tap_diag("mcd_apply_event(%s) = %d", ev.event_id, f->rc);
}

static void apply_now(struct fx *f, struct mcd_event ev, const char *now) {
        mcd_outcomes_clear(&f->out);
        f->rc = mcd_apply_event(&f->c, &ev, at(now), &f->cfg, &f->out);
}

static int fire(struct fx *f, const char *now) {
        mcd_outcomes_clear(&f->out);
        f->rc = mcd_fire_next_due(&f->c, at(now), &f->cfg, &f->out);
        return f->rc;
}

/* Customer c-1 with an accepted relationship with p-1, no outcome kept. */
static void setup_accepted(struct fx *f) {
        fx_init(f);
        apply(f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(f, accepted("a-1", "2026-03-01T10:00:00Z", "p-1"));
}

static const struct mcd_outcome *O(const struct fx *f, size_t i) {
        static const struct mcd_outcome none = { .type = MCD_OUT__COUNT };
        return i < f->out.n ? &f->out.v[i] : &none;
}

static const char *type_of(const struct fx *f, size_t i) {
        const char *n = mcd_outcome_type_name(O(f, i)->type);
        return n ? n : "(none)";
}

static const struct mcd_subscription *sub(const struct fx *f, const char *id) {
        return mcd_customer_find_sub(&f->c, id);
}

static const char *sub_state(const struct fx *f, const char *id) {
        const struct mcd_subscription *s = sub(f, id);
        return s ? mcd_sub_state_name(s->state) : "(unknown)";
}

static const char *cstate(const struct fx *f) {
        return mcd_customer_state_name(f->c.state);
}

/* Outcome i: its type and id. */
static void out_is(const struct fx *f, size_t i, const char *type, const char *id, const char *test) {
        is_str(type_of(f, i), type, "%s: outcome %zu is %s", test, i, type);
        is_str(O(f, i)->event_id, id, "%s: outcome %zu id %s", test, i, id);
}

static void rejected_is(const struct fx *f, size_t i, const char *reason, const char *event_type,
                        const char *test) {
        is_str(type_of(f, i), "TransitionRejected", "%s: TransitionRejected", test);
        is_str(O(f, i)->reason, reason, "%s: reason %s", test, reason);
        is_str(O(f, i)->rejected_event_type, event_type, "%s: rejected_event_type %s", test, event_type);
        ok(O(f, i)->message && *O(f, i)->message, "%s: has a message", test);
}

static void nothing(const struct fx *f, const char *test) {
        is_int(f->rc, 0, "%s: returns 0", test);
        is_int(f->out.n, 0, "%s: emits nothing", test);
}

/* ------------------------------------------------------------- model -- */

static void test_names(void) {
        is_str(mcd_cloud_name(MCD_CLOUD_US_GOVERNMENT), "US_GOVERNMENT", "names: cloud");
        is_str(mcd_billing_name(MCD_BILLING_LICENSE_BASED), "LICENSE_BASED", "names: billing");
        is_str(mcd_channel_name(MCD_CHANNEL_THIRD_PARTY), "THIRD_PARTY", "names: channel");
        is_str(mcd_scope_name(MCD_SCOPE_ENTIRE_SUBSCRIPTION), "ENTIRE_SUBSCRIPTION", "names: scope");
        is_str(mcd_sub_state_name(MCD_SS_CSP_CREATED), "CSP_CREATED", "names: sub state");
        is_str(mcd_customer_state_name(MCD_CS_MIGRATED), "MIGRATED", "names: customer state");
        is_str(mcd_next_action_name(MCD_NEXT_CREATE_AZURE_CSP_SUBSCRIPTION), "CREATE_AZURE_CSP_SUBSCRIPTION",
               "names: next action");
        is_str(mcd_switch_reason_name(MCD_SWITCH_SUBSCRIPTION_CANCELLED), "SUBSCRIPTION_CANCELLED",
               "names: switch reason");
        is_str(mcd_event_type_name(MCD_EV_CSP_SUBSCRIPTION_CREATED), "CspSubscriptionCreated", "names: event type");
        is_str(mcd_outcome_type_name(MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED), "MultiChannelSupportEnabled",
               "names: outcome type");
        ok(mcd_event_type_name(MCD_EV__COUNT) == NULL, "names: out of range is NULL");
        is_int(mcd_event_type_from_name("RelationshipRequested"), MCD_EV_RELATIONSHIP_REQUESTED,
               "names: event type from name");
        is_int(mcd_outcome_type_from_name("TransitionRejected"), MCD_OUT_TRANSITION_REJECTED,
               "names: outcome type from name");
        is_int(mcd_channel_from_name("CSP"), MCD_CHANNEL_CSP, "names: channel from name");
        is_int(mcd_cloud_from_name("commercial"), -EINVAL, "names: from_name is case-sensitive");
        is_int(mcd_billing_from_name(NULL), -EINVAL, "names: from_name(NULL) is -EINVAL");
        for (int i = 0; i < MCD_OUT__COUNT; i++)
                is_int(mcd_outcome_type_from_name(mcd_outcome_type_name(i)), i, "names: outcome %d round trip", i);
        for (int i = 0; i < MCD_EV__COUNT; i++)
                is_int(mcd_event_type_from_name(mcd_event_type_name(i)), i, "names: event %d round trip", i);
}

static void test_validate(void) {
        const char *why = NULL;
        struct mcd_event ev;

        ev = license("e", "2026-03-01T09:00:00Z", "s", "2026-06-30T00:00:00Z");
        is_int(mcd_event_validate(&ev, &why), 0, "validate: a license subscription with term_end");
        ev.has_term_end = false;
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: license without term_end");
        is_str(why, "term_end is required for a LICENSE_BASED subscription", "validate: term_end message");
        ev = azure_csp("e", "2026-03-01T09:00:00Z", "s", NULL);
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: CSP without seller");
        is_str(why, "seller_partner_id is required when channel is CSP", "validate: seller message");
        ev = azure("e", "2026-03-01T09:00:00Z", "s");
        ev.offer_name = NULL;
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: Reported without offer_name");
        ev = requested("e", "2026-03-01T09:00:00Z", NULL);
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: Requested without partner_id");
        ev = csp_created("e", "2026-03-01T09:00:00Z", "s", NULL, "p");
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: CspSubscriptionCreated without csp id");
        ev = csp_created("e", "2026-03-01T09:00:00Z", "s", "x", NULL);
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: CspSubscriptionCreated without partner_id");
        ev = switch_req("e", "2026-03-01T09:00:00Z", "s", NULL);
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: SwitchRequested without target");
        ev = term_ended("e", "2026-03-01T09:00:00Z", NULL);
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: TermEnded without subscription_id");
        ev = term_ended(NULL, "2026-03-01T09:00:00Z", "s");
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "validate: no event_id");
        ev = cancelled("e", "2026-03-01T09:00:00Z", "s", MCD_SCOPE_SOME_SERVICES);
        is_int(mcd_event_validate(&ev, &why), 0, "validate: Cancelled with no services");
}

static void test_event_copy(void) {
        char *services[] = { (char *)"vm-1", (char *)"vm-2" };
        struct mcd_event ev = cancelled("e-1", "2026-03-01T09:00:00Z", "s-1", MCD_SCOPE_SOME_SERVICES), copy;

        ev.services = services;
        ev.n_services = 2;
        is_int(mcd_event_copy(&copy, &ev), 0, "event copy: returns 0");
        ok(copy.event_id != ev.event_id && strcmp(copy.event_id, "e-1") == 0, "event copy: deep event_id");
        is_int(copy.n_services, 2, "event copy: services count");
        is_str(copy.services[1], "vm-2", "event copy: services");
        mcd_event_clear(&copy);
        ok(copy.event_id == NULL && copy.services == NULL, "event copy: clear zeroes");
}

static void test_seen(void) {
        struct mcd_customer c;
        const char *ids[] = { "m", "c", "x", "a", "c", "z", "b" };
        const mcd_time_t times[] = { 5, 3, 9, 3, 1, 0, 3 };
        const struct mcd_seen_id *v;
        bool sorted = true;

        mcd_customer_init(&c, "c-1");
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
                mcd_customer_mark_seen(&c, ids[i], times[i]);
        is_int(mcd_seen_count(&c.seen), 6, "seen: a repeated id is kept once");
        v = mcd_seen_ids(&c.seen);
        for (size_t i = 1; i < mcd_seen_count(&c.seen); i++)
                sorted = sorted && v[i - 1].occurred_at <= v[i].occurred_at;
        ok(sorted, "seen: kept in occurred_at order");
        ok(v[1].hash == mcd_id_hash("c") && v[2].hash == mcd_id_hash("a") && v[3].hash == mcd_id_hash("b"),
           "seen: ties in the order they were seen");
        ok(mcd_customer_has_seen(&c, "x") && mcd_customer_has_seen(&c, "a"), "seen: found");
        ok(!mcd_customer_has_seen(&c, "y"), "seen: not found");
        mcd_customer_clear(&c);
}

/* Many ids, past the point where lookups go through the hash set, and
 * forgotten again: every answer stays right. */
static void test_seen_set(void) {
        struct mcd_seen s = {0};
        char id[32];
        bool right = true;

        for (int i = 0; i < 5000; i++) {
                snprintf(id, sizeof(id), "e-%d", i);
                mcd_seen_add(&s, mcd_id_hash(id), i);
        }
        mcd_seen_forget(&s, 1000000, 1000);
        is_int(mcd_seen_count(&s), 1000, "seen set: the count keeps 1000");
        for (int i = 0; i < 5000; i++) {
                snprintf(id, sizeof(id), "e-%d", i);
                right = right && mcd_seen_has(&s, mcd_id_hash(id)) == (i >= 4000);
        }
        ok(right, "seen set: exactly the 1000 latest are found");
        mcd_seen_forget(&s, 5, 1000);
        is_int(mcd_seen_count(&s), 6, "seen set: the window keeps 4994..4999");
        ok(mcd_seen_has(&s, mcd_id_hash("e-4999")) && !mcd_seen_has(&s, mcd_id_hash("e-4993")),
           "seen set: back to a scan, still right");
        mcd_seen_clear(&s);
}

static void test_timer_cause(void) {
        char *s = mcd_timer_cause("c-1", "s-1");
        is_str(s, "timer:c-1:s-1:term_end", "timer cause: timer:<customer>:<subscription>:term_end");
        free(s);
}

/* ------------------------------------------- RelationshipRequested -- */

static void test_requested_csp_partner(void) {
        const char *t = "RelationshipRequested, customer_is_csp_partner";
        struct fx f;
        struct mcd_event ev = requested("r-1", "2026-03-01T09:00:00Z", "p-1");

        fx_init(&f);
        ev.customer_is_csp_partner = true;
        apply(&f, ev);
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "ResaleRejected", "r-1#0", t);
        is_str(O(&f, 0)->reason, "CSP_TO_CSP_RESALE_NOT_SUPPORTED", "%s: reason", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the cause's", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: subscription_id null", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "NONE", "%s: customer_state NONE", t);
        is_str(cstate(&f), "NONE", "%s: state unchanged", t);
        ok(f.c.partner_id == NULL, "%s: partner not recorded", t);
        fx_done(&f);
}

static void test_requested_none(void) {
        const char *t = "RelationshipRequested, state NONE";
        struct fx f;
        struct mcd_event ev = requested("r-1", "2026-03-01T09:00:00Z", "p-1");

        fx_init(&f);
        ev.indirect_reseller_id = (char *)"res-1";
        apply(&f, ev);
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "CustomerStateChanged", "r-1#0", t);
        is_str(mcd_customer_state_name(O(&f, 0)->from_state), "NONE", "%s: from NONE", t);
        is_str(mcd_customer_state_name(O(&f, 0)->to_state), "REQUESTED", "%s: to REQUESTED", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "REQUESTED", "%s: customer_state", t);
        is_str(O(&f, 0)->caused_by, "r-1", "%s: caused_by", t);
        is_str(O(&f, 0)->customer_id, "c-1", "%s: customer_id", t);
        is_int(O(&f, 0)->occurred_at, at("2026-03-01T09:00:00Z"), "%s: occurred_at is the cause's", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: subscription_id null", t);
        is_str(f.c.partner_id, "p-1", "%s: partner recorded", t);
        is_str(f.c.indirect_reseller_id, "res-1", "%s: reseller recorded", t);
        ok(f.c.has_cloud && f.c.cloud == MCD_CLOUD_COMMERCIAL, "%s: cloud recorded", t);
        fx_done(&f);
}

static void test_requested_cancelled(void) {
        const char *t = "RelationshipRequested, state CANCELLED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, removed("x-1", "2026-03-02T09:00:00Z", "p-1"));
        apply(&f, requested("r-2", "2026-03-03T09:00:00Z", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "CustomerStateChanged", "r-2#0", t);
        is_str(mcd_customer_state_name(O(&f, 0)->from_state), "CANCELLED", "%s: from CANCELLED", t);
        is_str(cstate(&f), "REQUESTED", "%s: REQUESTED", t);
        is_str(f.c.partner_id, "p-2", "%s: new partner replaces the old one", t);
        ok(f.c.indirect_reseller_id == NULL, "%s: reseller replaced too", t);
        fx_done(&f);
}

static void test_requested_same_partner(void) {
        const char *t = "RelationshipRequested, active relationship with the same partner";
        struct fx f;

        setup_accepted(&f);
        apply(&f, requested("r-2", "2026-03-02T09:00:00Z", "p-1"));
        nothing(&f, t);
        is_str(cstate(&f), "ACCEPTED", "%s: state unchanged", t);
        fx_done(&f);

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, requested("r-2", "2026-03-01T09:01:00Z", "p-1"));
        nothing(&f, "RelationshipRequested, REQUESTED with the same partner");
        fx_done(&f);
}

static void test_requested_other_partner(void) {
        const char *t = "RelationshipRequested, active relationship with another partner";
        struct fx f;

        setup_accepted(&f);
        apply(&f, requested("r-2", "2026-03-02T09:00:00Z", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "TransitionRejected", "r-2#0", t);
        rejected_is(&f, 0, "RELATIONSHIP_HELD_BY_OTHER_PARTNER", "RelationshipRequested", t);
        is_str(O(&f, 0)->partner_id, "p-2", "%s: partner_id is the cause's", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: subscription_id null", t);
        is_str(f.c.partner_id, "p-1", "%s: customer's partner unchanged", t);
        is_str(cstate(&f), "ACCEPTED", "%s: state unchanged", t);
        fx_done(&f);
}

/* -------------------------------------------- RelationshipAccepted -- */

static void test_accepted_requested(void) {
        const char *t = "RelationshipAccepted, REQUESTED, same partner";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, license("s-b", "2026-03-01T09:01:00Z", "sub-b", "2026-06-30T00:00:00Z"));
        apply(&f, azure("s-a", "2026-03-01T09:02:00Z", "sub-a"));
        apply(&f, accepted("a-1", "2026-03-01T10:00:00Z", "p-1"));
        is_int(f.out.n, 3, "%s: three outcomes", t);
        out_is(&f, 0, "CustomerStateChanged", "a-1#0", t);
        is_str(mcd_customer_state_name(O(&f, 0)->to_state), "ACCEPTED", "%s: to ACCEPTED", t);
        out_is(&f, 1, "MultiChannelSupportEnabled", "a-1#1", t);
        is_str(O(&f, 1)->subscription_id, "sub-b", "%s: first reported first", t);
        is_str(mcd_next_action_name(O(&f, 1)->next_action), "MANAGE_AS_IS", "%s: license EA: MANAGE_AS_IS", t);
        out_is(&f, 2, "MultiChannelSupportEnabled", "a-1#2", t);
        is_str(O(&f, 2)->subscription_id, "sub-a", "%s: then the second", t);
        is_str(mcd_next_action_name(O(&f, 2)->next_action), "CREATE_AZURE_CSP_SUBSCRIPTION",
               "%s: usage EA: CREATE_AZURE_CSP_SUBSCRIPTION", t);
        is_str(mcd_billing_name(O(&f, 2)->billing), "USAGE_BASED", "%s: billing", t);
        is_str(mcd_channel_name(O(&f, 2)->channel), "EA", "%s: channel", t);
        for (size_t i = 0; i < 3; i++)
                is_str(mcd_customer_state_name(O(&f, i)->customer_state), "ACCEPTED", "%s: outcome %zu ACCEPTED",
                       t, i);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: CustomerStateChanged has no subscription_id", t);
        is_str(sub_state(&f, "sub-a"), "SUPPORTED", "%s: sub-a SUPPORTED", t);
        is_str(sub_state(&f, "sub-b"), "SUPPORTED", "%s: sub-b SUPPORTED", t);
        fx_done(&f);
}

static void test_accepted_already(void) {
        const char *t = "RelationshipAccepted, ACCEPTED, same partner";
        struct fx f;

        setup_accepted(&f);
        apply(&f, accepted("a-2", "2026-03-02T09:00:00Z", "p-1"));
        nothing(&f, t);
        fx_done(&f);

        t = "RelationshipAccepted, MIGRATED, same partner";
        setup_accepted(&f);
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_str(cstate(&f), "MIGRATED", "%s: set up MIGRATED", t);
        apply(&f, accepted("a-2", "2026-03-02T10:00:00Z", "p-1"));
        nothing(&f, t);
        is_str(cstate(&f), "MIGRATED", "%s: stays MIGRATED", t);
        fx_done(&f);
}

static void test_accepted_no_request(void) {
        const char *t = "RelationshipAccepted, state NONE";
        struct fx f;

        fx_init(&f);
        apply(&f, accepted("a-1", "2026-03-01T10:00:00Z", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "NO_PENDING_REQUEST", "RelationshipAccepted", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the cause's", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: subscription_id null", t);
        fx_done(&f);

        t = "RelationshipAccepted, state CANCELLED (checked before the partner)";
        setup_accepted(&f);
        apply(&f, removed("x-1", "2026-03-02T09:00:00Z", "p-1"));
        apply(&f, accepted("a-2", "2026-03-02T10:00:00Z", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "NO_PENDING_REQUEST", "RelationshipAccepted", t);
        is_str(cstate(&f), "CANCELLED", "%s: state unchanged", t);
        fx_done(&f);
}

static void test_accepted_other_partner(void) {
        const char *t = "RelationshipAccepted, another partner";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, accepted("a-1", "2026-03-01T10:00:00Z", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "RELATIONSHIP_HELD_BY_OTHER_PARTNER", "RelationshipAccepted", t);
        is_str(O(&f, 0)->partner_id, "p-2", "%s: partner_id is the cause's", t);
        is_str(cstate(&f), "REQUESTED", "%s: still REQUESTED", t);
        fx_done(&f);
}

/* --------------------------------------------- RelationshipRemoved -- */

static void test_removed_active(void) {
        const char *t = "RelationshipRemoved, active relationship, same partner";
        struct fx f;
        mcd_time_t due;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "blocked", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "blocked", "p-1"));
        apply(&f, azure_csp("s-2", "2026-03-02T09:02:00Z", "migrated", "p-other"));
        apply(&f, switch_req("w-2", "2026-03-02T09:03:00Z", "migrated", "p-1"));
        apply(&f, csp_created("k-2", "2026-03-02T09:04:00Z", "migrated", "csp-2", "p-1"));
        apply(&f, azure("s-3", "2026-03-02T09:05:00Z", "gone"));
        apply(&f, cancelled("c-3", "2026-03-02T09:06:00Z", "gone", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        apply(&f, azure("s-4", "2026-03-02T09:07:00Z", "coexisting"));
        apply(&f, csp_created("k-4", "2026-03-02T09:08:00Z", "coexisting", "csp-4", "p-1"));
        ok(mcd_next_due(&f.c, &due, NULL), "%s: a timer is armed before", t);

        apply(&f, removed("x-1", "2026-03-03T09:00:00Z", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "CustomerStateChanged", "x-1#0", t);
        is_str(mcd_customer_state_name(O(&f, 0)->from_state), "ACCEPTED", "%s: from ACCEPTED", t);
        is_str(mcd_customer_state_name(O(&f, 0)->to_state), "CANCELLED", "%s: to CANCELLED", t);
        is_str(sub_state(&f, "blocked"), "REPORTED", "%s: SWITCH_BLOCKED back to REPORTED", t);
        is_str(sub_state(&f, "coexisting"), "REPORTED", "%s: CSP_CREATED back to REPORTED", t);
        is_str(sub_state(&f, "migrated"), "MIGRATED", "%s: MIGRATED kept", t);
        is_str(sub_state(&f, "gone"), "CANCELLED", "%s: CANCELLED kept", t);
        ok(!mcd_next_due(&f.c, &due, NULL), "%s: timer dropped", t);
        is_str(f.c.partner_id, "p-1", "%s: partner kept after removal", t);
        fx_done(&f);
}

static void test_removed_no_relationship(void) {
        const char *t = "RelationshipRemoved, no active relationship";
        struct fx f;

        fx_init(&f);
        apply(&f, removed("x-1", "2026-03-01T09:00:00Z", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "NO_ACTIVE_RELATIONSHIP", "RelationshipRemoved", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: subscription_id null", t);
        is_str(cstate(&f), "NONE", "%s: state unchanged", t);
        fx_done(&f);
}

static void test_removed_other_partner(void) {
        const char *t = "RelationshipRemoved, another partner";
        struct fx f;

        setup_accepted(&f);
        apply(&f, removed("x-1", "2026-03-02T09:00:00Z", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "RELATIONSHIP_HELD_BY_OTHER_PARTNER", "RelationshipRemoved", t);
        is_str(O(&f, 0)->partner_id, "p-2", "%s: partner_id is the cause's", t);
        is_str(cstate(&f), "ACCEPTED", "%s: state unchanged", t);
        fx_done(&f);
}

/* -------------------------------------------- SubscriptionReported -- */

static void test_reported_known(void) {
        const char *t = "SubscriptionReported, already known";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, license("s-2", "2026-03-02T09:01:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        nothing(&f, t);
        is_int(f.c.n_subs, 1, "%s: not recorded twice", t);
        is_str(mcd_billing_name(sub(&f, "sub-1")->billing), "USAGE_BASED", "%s: first report kept", t);
        fx_done(&f);
}

static void test_reported_already_with_partner(void) {
        const char *t = "SubscriptionReported, CSP, seller is the relationship partner";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, azure_csp("s-1", "2026-03-01T09:01:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "TransitionRejected", "s-1#0", t);
        rejected_is(&f, 0, "ALREADY_WITH_PARTNER", "SubscriptionReported", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id is the cause's", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's", t);
        ok(sub(&f, "sub-1") == NULL, "%s: not recorded", t);
        fx_done(&f);

        t = "SubscriptionReported, CSP, seller is the partner of a removed relationship";
        setup_accepted(&f);
        apply(&f, removed("x-1", "2026-03-02T09:00:00Z", "p-1"));
        apply(&f, azure_csp("s-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        out_is(&f, 0, "RelationshipRequestRequired", "s-1#0", t);
        fx_done(&f);
}

static void test_reported_no_relationship(void) {
        const char *t = "SubscriptionReported, state NONE";
        struct fx f;

        fx_init(&f);
        apply(&f, azure("s-1", "2026-03-01T09:00:00Z", "sub-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "RelationshipRequestRequired", "s-1#0", t);
        is_str(mcd_billing_name(O(&f, 0)->billing), "USAGE_BASED", "%s: billing", t);
        is_str(mcd_channel_name(O(&f, 0)->channel), "EA", "%s: channel", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        ok(O(&f, 0)->partner_id == NULL, "%s: partner_id null with no request ever", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "NONE", "%s: customer_state NONE", t);
        is_str(sub_state(&f, "sub-1"), "REPORTED", "%s: recorded REPORTED", t);
        fx_done(&f);

        t = "SubscriptionReported, state CANCELLED";
        setup_accepted(&f);
        apply(&f, removed("x-1", "2026-03-02T09:00:00Z", "p-1"));
        apply(&f, license("s-1", "2026-03-02T09:01:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "RelationshipRequestRequired", "s-1#0", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id of the removed relationship", t);
        is_str(sub_state(&f, "sub-1"), "REPORTED", "%s: recorded REPORTED", t);
        fx_done(&f);
}

static void test_reported_requested(void) {
        const char *t = "SubscriptionReported, state REQUESTED";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, azure_csp("s-1", "2026-03-01T09:01:00Z", "sub-1", "p-other"));
        nothing(&f, t);
        is_str(sub_state(&f, "sub-1"), "REPORTED", "%s: recorded REPORTED", t);
        is_str(sub(&f, "sub-1")->seller_partner_id, "p-other", "%s: seller recorded", t);
        fx_done(&f);
}

static void test_reported_accepted(void) {
        const char *t = "SubscriptionReported, state ACCEPTED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "MultiChannelSupportEnabled", "s-1#0", t);
        is_str(mcd_next_action_name(O(&f, 0)->next_action), "MANAGE_AS_IS", "%s: MANAGE_AS_IS", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's", t);
        is_str(sub_state(&f, "sub-1"), "SUPPORTED", "%s: recorded SUPPORTED", t);

        apply(&f, azure_csp("s-2", "2026-03-02T09:01:00Z", "sub-2", "p-other"));
        is_str(mcd_next_action_name(O(&f, 0)->next_action), "REQUEST_SWITCH", "%s: CSP: REQUEST_SWITCH", t);
        is_str(mcd_billing_name(O(&f, 0)->billing), "USAGE_BASED", "%s: billing", t);
        is_str(mcd_channel_name(O(&f, 0)->channel), "CSP", "%s: channel", t);
        apply(&f, reported("s-3", "2026-03-02T09:02:00Z", "sub-3", MCD_BILLING_LICENSE_BASED, MCD_CHANNEL_CSP,
                           "p-other", "2026-06-30T00:00:00Z"));
        is_str(mcd_next_action_name(O(&f, 0)->next_action), "REQUEST_SWITCH",
               "%s: license via CSP: REQUEST_SWITCH", t);
        apply(&f, azure("s-4", "2026-03-02T09:03:00Z", "sub-4"));
        is_str(mcd_next_action_name(O(&f, 0)->next_action), "CREATE_AZURE_CSP_SUBSCRIPTION",
               "%s: usage outside CSP: CREATE_AZURE_CSP_SUBSCRIPTION", t);
        fx_done(&f);
}

/* ------------------------------------------------- SwitchRequested -- */

static void test_switch_unknown(void) {
        const char *t = "SwitchRequested, subscription unknown";
        struct fx f;

        setup_accepted(&f);
        apply(&f, switch_req("w-1", "2026-03-02T09:00:00Z", "nope", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "SwitchRequested", t);
        is_str(O(&f, 0)->subscription_id, "nope", "%s: subscription_id is the cause's", t);
        fx_done(&f);

        t = "SwitchRequested, subscription unknown, before acceptance (not parked)";
        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, switch_req("w-1", "2026-03-01T09:01:00Z", "nope", "p-1"));
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "SwitchRequested", t);
        is_int(f.c.n_parked, 0, "%s: nothing parked", t);
        fx_done(&f);
}

static void test_switch_parked(void) {
        const char *t = "SwitchRequested, state not ACCEPTED/MIGRATED";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, azure_csp("s-1", "2026-03-01T09:01:00Z", "sub-1", "p-other"));
        apply_now(&f, switch_req("w-1", "2026-03-01T09:02:00Z", "sub-1", "p-1"), "2026-03-01T09:03:00Z");
        nothing(&f, t);
        is_int(f.c.n_parked, 1, "%s: parked", t);
        is_str(f.c.parked[0].event.event_id, "w-1", "%s: the event is kept", t);
        is_int(f.c.parked[0].deadline, at("2026-03-01T09:13:00Z"), "%s: deadline is now + park_grace", t);
        ok(mcd_customer_has_seen(&f.c, "w-1"), "%s: marked seen", t);
        is_str(sub_state(&f, "sub-1"), "REPORTED", "%s: subscription unchanged", t);
        fx_done(&f);
}

static void test_switch_target(void) {
        const char *t = "SwitchRequested, target is not the relationship partner";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "TARGET_NOT_RELATIONSHIP_PARTNER", "SwitchRequested", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's, not the target", t);
        is_str(sub_state(&f, "sub-1"), "SUPPORTED", "%s: subscription unchanged", t);
        fx_done(&f);
}

static void test_switch_closed(void) {
        const char *t = "SwitchRequested, subscription MIGRATED or CANCELLED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, cancelled("c-1", "2026-03-02T09:01:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        apply(&f, switch_req("w-1", "2026-03-02T09:02:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome (CANCELLED)", t);
        rejected_is(&f, 0, "SUBSCRIPTION_CLOSED", "SwitchRequested", t);

        apply(&f, azure_csp("s-2", "2026-03-02T09:03:00Z", "sub-2", "p-other"));
        apply(&f, switch_req("w-2", "2026-03-02T09:04:00Z", "sub-2", "p-1"));
        apply(&f, csp_created("k-2", "2026-03-02T09:05:00Z", "sub-2", "csp-2", "p-1"));
        apply(&f, switch_req("w-3", "2026-03-02T09:06:00Z", "sub-2", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome (MIGRATED)", t);
        rejected_is(&f, 0, "SUBSCRIPTION_CLOSED", "SwitchRequested", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "MIGRATED", "%s: customer_state MIGRATED", t);
        fx_done(&f);
}

static void test_switch_already(void) {
        const char *t = "SwitchRequested, already SWITCH_BLOCKED or SWITCH_ALLOWED";
        struct fx f;

        setup_accepted(&f);
        f.cfg.dedup_window = 365 * 24 * 60 * MIN;        /* events four months apart */
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, switch_req("w-2", "2026-07-02T09:01:00Z", "sub-1", "p-1"));
        nothing(&f, "SwitchRequested, already SWITCH_BLOCKED (even after term_end)");
        is_str(sub_state(&f, "sub-1"), "SWITCH_BLOCKED", "%s: still SWITCH_BLOCKED", t);

        apply(&f, azure_csp("s-2", "2026-03-02T09:03:00Z", "sub-2", "p-other"));
        apply(&f, switch_req("w-3", "2026-03-02T09:04:00Z", "sub-2", "p-1"));
        apply(&f, switch_req("w-4", "2026-03-02T09:05:00Z", "sub-2", "p-1"));
        nothing(&f, "SwitchRequested, already SWITCH_ALLOWED");
        is_str(sub_state(&f, "sub-2"), "SWITCH_ALLOWED", "%s: still SWITCH_ALLOWED", t);
        fx_done(&f);
}

static void test_switch_license_blocked(void) {
        const char *t = "SwitchRequested, license-based, term_end after occurred_at";
        struct fx f;
        mcd_time_t due;
        const char *sid = NULL;

        setup_accepted(&f);
        apply(&f, reported("s-1", "2026-03-02T09:00:00Z", "sub-1", MCD_BILLING_LICENSE_BASED, MCD_CHANNEL_OPEN,
                           NULL, "2026-06-30T23:59:59Z"));
        apply(&f, switch_req("w-1", "2026-03-03T09:00:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "SwitchBlockedUntilTermEnd", "w-1#0", t);
        is_int(O(&f, 0)->term_end, at("2026-06-30T23:59:59Z"), "%s: term_end", t);
        is_str(mcd_channel_name(O(&f, 0)->channel), "OPEN", "%s: channel", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id", t);
        ok(O(&f, 0)->message && strstr(O(&f, 0)->message, "2026-06-30T23:59:59.000Z"),
           "%s: message names the date", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_BLOCKED", "%s: SWITCH_BLOCKED", t);
        ok(mcd_next_due(&f.c, &due, &sid), "%s: timer armed", t);
        is_int(due, at("2026-06-30T23:59:59Z"), "%s: timer due at term_end", t);
        is_str(sid, "sub-1", "%s: timer's subscription", t);
        fx_done(&f);
}

static void test_switch_license_ended(void) {
        const char *t = "SwitchRequested, license-based, term already ended";
        struct fx f;
        mcd_time_t due;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-03-03T09:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-03T09:00:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome (term_end equal to occurred_at)", t);
        out_is(&f, 0, "SwitchAllowed", "w-1#0", t);
        is_str(mcd_switch_reason_name(O(&f, 0)->switch_reason), "TERM_ENDED", "%s: TERM_ENDED", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_ALLOWED", "%s: SWITCH_ALLOWED", t);
        ok(!mcd_next_due(&f.c, &due, NULL), "%s: no timer", t);
        fx_done(&f);
}

static void test_switch_usage_csp(void) {
        const char *t = "SwitchRequested, usage-based, channel CSP";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "SwitchAllowed", "w-1#0", t);
        is_str(mcd_switch_reason_name(O(&f, 0)->switch_reason), "USAGE_BASED", "%s: USAGE_BASED", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_ALLOWED", "%s: SWITCH_ALLOWED", t);
        fx_done(&f);
}

static void test_switch_usage_other(void) {
        const char *t = "SwitchRequested, usage-based, other channel";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "CREATE_AZURE_CSP_SUBSCRIPTION_INSTEAD", "SwitchRequested", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        is_str(sub_state(&f, "sub-1"), "SUPPORTED", "%s: unchanged", t);
        fx_done(&f);
}

/* ------------------------------------------ CspSubscriptionCreated -- */

static void test_csp_unknown(void) {
        const char *t = "CspSubscriptionCreated, subscription unknown";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-01T09:01:00Z", "nope", "csp-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "CspSubscriptionCreated", t);
        is_str(O(&f, 0)->subscription_id, "nope", "%s: subscription_id", t);
        is_int(f.c.n_parked, 0, "%s: not parked", t);
        fx_done(&f);
}

static void test_csp_parked(void) {
        const char *t = "CspSubscriptionCreated, state not ACCEPTED/MIGRATED";
        struct fx f;

        fx_init(&f);
        apply(&f, azure("s-1", "2026-03-01T09:00:00Z", "sub-1"));
        apply(&f, csp_created("k-1", "2026-03-01T09:01:00Z", "sub-1", "csp-1", "p-1"));
        nothing(&f, t);
        is_int(f.c.n_parked, 1, "%s: parked", t);
        is_int(f.c.parked[0].deadline, at("2026-03-01T09:11:00Z"), "%s: deadline", t);
        fx_done(&f);
}

static void test_csp_partner_mismatch(void) {
        const char *t = "CspSubscriptionCreated, partner_id is not the relationship partner";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:01:00Z", "sub-1", "csp-1", "p-2"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "PARTNER_MISMATCH", "CspSubscriptionCreated", t);
        is_str(O(&f, 0)->partner_id, "p-2", "%s: partner_id is the cause's", t);
        is_str(sub_state(&f, "sub-1"), "SUPPORTED", "%s: unchanged", t);
        fx_done(&f);
}

static void test_csp_closed(void) {
        const char *t = "CspSubscriptionCreated, subscription MIGRATED or CANCELLED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, cancelled("c-1", "2026-03-02T09:01:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SUBSCRIPTION_CLOSED", "CspSubscriptionCreated", t);
        fx_done(&f);
}

static void test_csp_azure_created(void) {
        const char *t = "CspSubscriptionCreated, usage-based outside CSP, SUPPORTED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, reported("s-1", "2026-03-02T09:00:00Z", "sub-1", MCD_BILLING_USAGE_BASED, MCD_CHANNEL_DIRECT,
                           NULL, NULL));
        apply(&f, csp_created("k-1", "2026-03-02T09:01:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "AzureCspSubscriptionCreated", "k-1#0", t);
        is_str(O(&f, 0)->csp_subscription_id, "csp-1", "%s: csp_subscription_id", t);
        is_str(mcd_channel_name(O(&f, 0)->channel), "DIRECT", "%s: legacy_channel", t);
        ok(O(&f, 0)->coexists, "%s: coexists", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id is the legacy one", t);
        is_str(sub_state(&f, "sub-1"), "CSP_CREATED", "%s: CSP_CREATED", t);
        is_str(cstate(&f), "ACCEPTED", "%s: still ACCEPTED (in flight)", t);
        fx_done(&f);
}

static void test_csp_switch_allowed(void) {
        const char *t = "CspSubscriptionCreated, SWITCH_ALLOWED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-03-01T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 2, "%s: two outcomes", t);
        out_is(&f, 0, "SubscriptionMigrated", "k-1#0", t);
        is_str(O(&f, 0)->csp_subscription_id, "csp-1", "%s: csp_subscription_id", t);
        is_str(sub_state(&f, "sub-1"), "MIGRATED", "%s: MIGRATED", t);
        fx_done(&f);
}

static void test_csp_switch_blocked(void) {
        const char *t = "CspSubscriptionCreated, SWITCH_BLOCKED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SWITCH_BLOCKED_UNTIL_TERM_END", "CspSubscriptionCreated", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_BLOCKED", "%s: still SWITCH_BLOCKED", t);
        fx_done(&f);
}

static void test_csp_not_requested(void) {
        const char *t = "CspSubscriptionCreated, otherwise";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome (license SUPPORTED)", t);
        rejected_is(&f, 0, "SWITCH_NOT_REQUESTED", "CspSubscriptionCreated", t);

        apply(&f, azure("s-2", "2026-03-02T09:03:00Z", "sub-2"));
        apply(&f, csp_created("k-2", "2026-03-02T09:04:00Z", "sub-2", "csp-2", "p-1"));
        apply(&f, csp_created("k-3", "2026-03-02T09:05:00Z", "sub-2", "csp-3", "p-1"));
        rejected_is(&f, 0, "SWITCH_NOT_REQUESTED", "CspSubscriptionCreated",
                    "CspSubscriptionCreated, otherwise (already CSP_CREATED)");
        fx_done(&f);
}

/* ------------------------------------------- SubscriptionCancelled -- */

static void test_cancel_unknown(void) {
        const char *t = "SubscriptionCancelled, subscription unknown";
        struct fx f;

        fx_init(&f);
        apply(&f, cancelled("c-1", "2026-03-02T09:00:00Z", "nope", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "SubscriptionCancelled", t);
        is_str(O(&f, 0)->subscription_id, "nope", "%s: subscription_id", t);
        fx_done(&f);
}

static void test_cancel_some(void) {
        const char *t = "SubscriptionCancelled, scope SOME_SERVICES";
        struct fx f;
        char *services[] = { (char *)"vm-1" };
        struct mcd_event ev = cancelled("c-1", "2026-03-02T09:02:00Z", "sub-1", MCD_SCOPE_SOME_SERVICES);

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:01:00Z", "sub-1", "csp-1", "p-1"));
        ev.services = services;
        ev.n_services = 1;
        apply(&f, ev);
        nothing(&f, t);
        is_str(sub_state(&f, "sub-1"), "CSP_CREATED", "%s: legacy keeps coexisting", t);
        fx_done(&f);
}

static void test_cancel_csp_created(void) {
        const char *t = "SubscriptionCancelled, ENTIRE_SUBSCRIPTION, CSP_CREATED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:01:00Z", "sub-1", "csp-1", "p-1"));
        apply(&f, cancelled("c-1", "2026-03-02T09:02:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        is_int(f.out.n, 2, "%s: two outcomes", t);
        out_is(&f, 0, "SubscriptionMigrated", "c-1#0", t);
        ok(O(&f, 0)->csp_subscription_id == NULL, "%s: csp_subscription_id null", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's", t);
        is_str(sub_state(&f, "sub-1"), "MIGRATED", "%s: MIGRATED", t);
        fx_done(&f);
}

static void test_cancel_blocked(void) {
        const char *t = "SubscriptionCancelled, ENTIRE_SUBSCRIPTION, SWITCH_BLOCKED";
        struct fx f;
        mcd_time_t due;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, cancelled("c-1", "2026-03-02T09:02:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "SwitchAllowed", "c-1#0", t);
        is_str(mcd_switch_reason_name(O(&f, 0)->switch_reason), "SUBSCRIPTION_CANCELLED",
               "%s: SUBSCRIPTION_CANCELLED", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_ALLOWED", "%s: SWITCH_ALLOWED", t);
        ok(!mcd_next_due(&f.c, &due, NULL), "%s: timer dropped", t);
        is_int(fire(&f, "2026-12-31T00:00:00Z"), 0, "%s: nothing fires later", t);
        fx_done(&f);
}

static void test_cancel_allowed(void) {
        const char *t = "SubscriptionCancelled, ENTIRE_SUBSCRIPTION, SWITCH_ALLOWED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, cancelled("c-1", "2026-03-02T09:02:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        nothing(&f, t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_ALLOWED", "%s: still SWITCH_ALLOWED", t);
        fx_done(&f);
}

static void test_cancel_reported(void) {
        const char *t = "SubscriptionCancelled, ENTIRE_SUBSCRIPTION, REPORTED or SUPPORTED";
        struct fx f;

        fx_init(&f);
        apply(&f, azure("s-1", "2026-03-01T09:00:00Z", "sub-1"));
        apply(&f, cancelled("c-1", "2026-03-01T09:01:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        nothing(&f, "SubscriptionCancelled, ENTIRE_SUBSCRIPTION, REPORTED (state NONE, not parked)");
        is_str(sub_state(&f, "sub-1"), "CANCELLED", "%s: REPORTED becomes CANCELLED", t);
        fx_done(&f);

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, cancelled("c-1", "2026-03-02T09:01:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        nothing(&f, "SubscriptionCancelled, ENTIRE_SUBSCRIPTION, SUPPORTED");
        is_str(sub_state(&f, "sub-1"), "CANCELLED", "%s: SUPPORTED becomes CANCELLED", t);
        fx_done(&f);
}

static void test_cancel_closed(void) {
        const char *t = "SubscriptionCancelled, already MIGRATED or CANCELLED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure("s-1", "2026-03-02T09:00:00Z", "sub-1"));
        apply(&f, cancelled("c-1", "2026-03-02T09:01:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        apply(&f, cancelled("c-2", "2026-03-02T09:02:00Z", "sub-1", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        nothing(&f, "SubscriptionCancelled, already CANCELLED");
        apply(&f, azure("s-3", "2026-03-02T09:03:00Z", "sub-3"));
        apply(&f, csp_created("k-3", "2026-03-02T09:04:00Z", "sub-3", "csp-3", "p-1"));
        apply(&f, cancelled("c-3", "2026-03-02T09:05:00Z", "sub-3", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        apply(&f, cancelled("c-4", "2026-03-02T09:06:00Z", "sub-3", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        nothing(&f, "SubscriptionCancelled, already MIGRATED");
        is_str(sub_state(&f, "sub-3"), "MIGRATED", "%s: still MIGRATED", t);
        fx_done(&f);
}

/* ------------------------------------------- SubscriptionTermEnded -- */

static void test_term_unknown(void) {
        const char *t = "SubscriptionTermEnded, subscription unknown";
        struct fx f;

        setup_accepted(&f);
        apply(&f, term_ended("t-1", "2026-03-02T09:00:00Z", "nope"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "SubscriptionTermEnded", t);
        is_str(O(&f, 0)->subscription_id, "nope", "%s: subscription_id", t);
        fx_done(&f);
}

static void test_term_blocked(void) {
        const char *t = "SubscriptionTermEnded, SWITCH_BLOCKED";
        struct fx f;
        mcd_time_t due;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, term_ended("t-1", "2026-04-01T09:00:00Z", "sub-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "SwitchAllowed", "t-1#0", t);
        is_str(mcd_switch_reason_name(O(&f, 0)->switch_reason), "TERM_ENDED", "%s: TERM_ENDED", t);
        is_int(O(&f, 0)->occurred_at, at("2026-04-01T09:00:00Z"), "%s: occurred_at is the event's", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_ALLOWED", "%s: SWITCH_ALLOWED", t);
        ok(!mcd_next_due(&f.c, &due, NULL), "%s: timer dropped", t);
        fx_done(&f);
}

static void test_term_otherwise(void) {
        const char *t = "SubscriptionTermEnded, otherwise";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, term_ended("t-1", "2026-04-01T09:00:00Z", "sub-1"));
        nothing(&f, t);
        is_int(sub(&f, "sub-1")->term_end, at("2026-04-01T09:00:00Z"), "%s: term_end becomes occurred_at", t);
        apply(&f, term_ended("t-2", "2026-05-01T09:00:00Z", "sub-1"));
        is_int(sub(&f, "sub-1")->term_end, at("2026-04-01T09:00:00Z"), "%s: a later one keeps the earlier", t);
        apply(&f, switch_req("w-1", "2026-04-02T09:00:00Z", "sub-1", "p-1"));
        out_is(&f, 0, "SwitchAllowed", "w-1#0", "SubscriptionTermEnded, otherwise: a later switch is allowed at once");

        apply(&f, azure("s-2", "2026-04-03T09:00:00Z", "sub-2"));
        apply(&f, term_ended("t-3", "2026-04-04T09:00:00Z", "sub-2"));
        nothing(&f, "SubscriptionTermEnded, otherwise, no term_end before");
        ok(sub(&f, "sub-2")->has_term_end, "%s: term_end set", t);
        is_int(sub(&f, "sub-2")->term_end, at("2026-04-04T09:00:00Z"), "%s: to occurred_at", t);
        fx_done(&f);

        fx_init(&f);
        apply(&f, license("s-1", "2026-03-01T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, term_ended("t-1", "2026-03-01T09:01:00Z", "sub-1"));
        nothing(&f, "SubscriptionTermEnded, state NONE (not parked)");
        is_int(f.c.n_parked, 0, "%s: not parked", t);
        fx_done(&f);
}

/* ---------------------------------------------- duplicates, cloud -- */

static void test_duplicates(void) {
        const char *t = "duplicate";
        struct fx f;
        struct mcd_event gov;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        nothing(&f, "duplicate of an applied event");
        apply(&f, removed("r-1", "2026-03-01T09:05:00Z", "p-1"));
        nothing(&f, "duplicate id, whatever the event");
        is_str(cstate(&f), "REQUESTED", "%s: state unchanged", t);

        apply(&f, accepted("a-1", "2026-03-01T09:06:00Z", "p-2"));
        is_int(f.out.n, 1, "%s: a rejection", t);
        apply(&f, accepted("a-1", "2026-03-01T09:07:00Z", "p-1"));
        nothing(&f, "duplicate of a rejected event");
        is_str(cstate(&f), "REQUESTED", "%s: still REQUESTED", t);

        apply(&f, azure("s-1", "2026-03-01T09:08:00Z", "sub-1"));
        apply(&f, csp_created("k-1", "2026-03-01T09:09:00Z", "sub-1", "csp-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-01T09:09:00Z", "sub-1", "csp-1", "p-1"));
        nothing(&f, "duplicate of a parked event");
        is_int(f.c.n_parked, 1, "%s: parked once", t);

        gov = accepted("g-1", "2026-03-01T09:10:00Z", "p-1");
        gov.cloud = MCD_CLOUD_US_GOVERNMENT;
        apply(&f, gov);
        is_int(f.out.n, 1, "%s: cloud mismatch rejected", t);
        gov.cloud = MCD_CLOUD_COMMERCIAL;
        apply(&f, gov);
        nothing(&f, "duplicate of a cloud-mismatch-rejected event");
        is_str(cstate(&f), "REQUESTED", "%s: not accepted by the repeat", t);
        fx_done(&f);
}

static void test_cloud_mismatch(void) {
        const char *t = "cloud mismatch";
        struct fx f;
        struct mcd_event ev;

        fx_init(&f);
        ev = requested("r-1", "2026-03-01T09:00:00Z", "p-1");
        ev.cloud = MCD_CLOUD_US_GOVERNMENT;
        apply(&f, ev);
        ev = accepted("a-1", "2026-03-01T10:00:00Z", "p-1");
        apply(&f, ev);
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "TransitionRejected", "a-1#0", t);
        rejected_is(&f, 0, "CLOUD_MISMATCH", "RelationshipAccepted", t);
        is_str(mcd_cloud_name(O(&f, 0)->cloud), "US_GOVERNMENT", "%s: outcome cloud is the customer's", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the cause's", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: relationship event: subscription_id null", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "REQUESTED", "%s: customer_state", t);
        is_str(cstate(&f), "REQUESTED", "%s: state unchanged", t);

        apply(&f, azure("s-1", "2026-03-01T11:00:00Z", "sub-1"));
        rejected_is(&f, 0, "CLOUD_MISMATCH", "SubscriptionReported", "cloud mismatch of a subscription event");
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id is the cause's", t);
        ok(sub(&f, "sub-1") == NULL, "%s: not recorded", t);
        fx_done(&f);

        t = "cloud fixed by a first event that is rejected";
        fx_init(&f);
        ev = requested("r-1", "2026-03-01T09:00:00Z", "p-1");
        ev.cloud = MCD_CLOUD_US_GOVERNMENT;
        ev.customer_is_csp_partner = true;
        apply(&f, ev);
        out_is(&f, 0, "ResaleRejected", "r-1#0", t);
        is_str(mcd_cloud_name(O(&f, 0)->cloud), "US_GOVERNMENT", "%s: ResaleRejected in US_GOVERNMENT", t);
        apply(&f, requested("r-2", "2026-03-01T09:01:00Z", "p-1"));
        rejected_is(&f, 0, "CLOUD_MISMATCH", "RelationshipRequested", t);
        is_str(cstate(&f), "NONE", "%s: state NONE", t);
        fx_done(&f);
}

/* --------------------------------------------------------- settling -- */

static void test_settle_to_migrated(void) {
        const char *t = "settling ACCEPTED -> MIGRATED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-03-01T00:00:00Z"));
        apply(&f, azure("s-2", "2026-03-02T09:01:00Z", "sub-2"));
        apply(&f, switch_req("w-1", "2026-03-02T09:02:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:03:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 1, "%s: not while a usage-based subscription outside CSP is SUPPORTED", t);
        is_str(cstate(&f), "ACCEPTED", "%s: still ACCEPTED", t);
        apply(&f, cancelled("c-2", "2026-03-02T09:04:00Z", "sub-2", MCD_SCOPE_ENTIRE_SUBSCRIPTION));
        is_int(f.out.n, 1, "%s: the cancel settles", t);
        out_is(&f, 0, "CustomerStateChanged", "c-2#0", t);
        is_str(mcd_customer_state_name(O(&f, 0)->from_state), "ACCEPTED", "%s: from ACCEPTED", t);
        is_str(mcd_customer_state_name(O(&f, 0)->to_state), "MIGRATED", "%s: to MIGRATED", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: subscription_id null", t);
        is_str(cstate(&f), "MIGRATED", "%s: MIGRATED", t);
        fx_done(&f);

        t = "settling ACCEPTED -> MIGRATED, after the rule's outcome";
        setup_accepted(&f);
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_int(f.out.n, 2, "%s: two outcomes", t);
        out_is(&f, 0, "SubscriptionMigrated", "k-1#0", t);
        out_is(&f, 1, "CustomerStateChanged", "k-1#1", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "MIGRATED", "%s: rule outcome stamped MIGRATED",
               t);
        is_str(mcd_customer_state_name(O(&f, 1)->customer_state), "MIGRATED", "%s: settling outcome MIGRATED", t);
        fx_done(&f);
}

static void test_settle_to_accepted(void) {
        const char *t = "settling MIGRATED -> ACCEPTED";
        struct fx f;

        setup_accepted(&f);
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_str(cstate(&f), "MIGRATED", "%s: set up MIGRATED", t);
        apply(&f, azure("s-2", "2026-03-02T09:03:00Z", "sub-2"));
        is_int(f.out.n, 2, "%s: two outcomes", t);
        out_is(&f, 0, "MultiChannelSupportEnabled", "s-2#0", t);
        out_is(&f, 1, "CustomerStateChanged", "s-2#1", t);
        is_str(mcd_customer_state_name(O(&f, 1)->from_state), "MIGRATED", "%s: from MIGRATED", t);
        is_str(mcd_customer_state_name(O(&f, 1)->to_state), "ACCEPTED", "%s: to ACCEPTED", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "ACCEPTED", "%s: outcomes stamped ACCEPTED", t);
        is_str(cstate(&f), "ACCEPTED", "%s: ACCEPTED", t);

        apply(&f, license("s-3", "2026-03-02T09:04:00Z", "sub-3", "2026-06-30T00:00:00Z"));
        is_int(f.out.n, 1, "%s: a license subscription is not in flight until a switch", t);
        fx_done(&f);

        t = "settling MIGRATED -> ACCEPTED on a blocked switch";
        setup_accepted(&f);
        apply(&f, license("s-0", "2026-03-02T08:00:00Z", "sub-0", "2026-06-30T00:00:00Z"));
        apply(&f, azure_csp("s-1", "2026-03-02T09:00:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-1"));
        is_str(cstate(&f), "MIGRATED", "%s: set up MIGRATED", t);
        apply(&f, switch_req("w-0", "2026-03-02T09:03:00Z", "sub-0", "p-1"));
        is_int(f.out.n, 2, "%s: two outcomes", t);
        out_is(&f, 0, "SwitchBlockedUntilTermEnd", "w-0#0", t);
        out_is(&f, 1, "CustomerStateChanged", "w-0#1", t);
        fx_done(&f);
}

/* ---------------------------------------------------------- parking -- */

static void test_parking_retry_order(void) {
        const char *t = "parking: retried in arrival order after acceptance";
        struct fx f;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-05-01T09:00:00Z", "p-1"));
        apply(&f, azure_csp("s-1", "2026-05-01T09:01:00Z", "sub-1", "p-other"));
        apply(&f, switch_req("w-1", "2026-05-01T09:02:00Z", "sub-1", "p-1"));
        apply(&f, csp_created("k-1", "2026-05-01T09:03:00Z", "sub-1", "csp-9", "p-1"));
        is_int(f.c.n_parked, 2, "%s: two parked", t);
        apply(&f, accepted("a-1", "2026-05-01T09:05:00Z", "p-1"));
        is_int(f.out.n, 5, "%s: five outcomes", t);
        out_is(&f, 0, "CustomerStateChanged", "a-1#0", t);
        out_is(&f, 1, "MultiChannelSupportEnabled", "a-1#1", t);
        out_is(&f, 2, "SwitchAllowed", "w-1#0", t);
        out_is(&f, 3, "SubscriptionMigrated", "k-1#0", t);
        out_is(&f, 4, "CustomerStateChanged", "k-1#1", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "ACCEPTED", "%s: acceptance stamped ACCEPTED", t);
        is_str(mcd_customer_state_name(O(&f, 1)->customer_state), "ACCEPTED", "%s: support stamped ACCEPTED", t);
        is_str(mcd_customer_state_name(O(&f, 2)->customer_state), "ACCEPTED", "%s: retried switch ACCEPTED", t);
        is_str(mcd_customer_state_name(O(&f, 3)->customer_state), "MIGRATED", "%s: retried create MIGRATED", t);
        is_int(O(&f, 0)->occurred_at, at("2026-05-01T09:05:00Z"), "%s: acceptance occurred_at", t);
        is_int(O(&f, 2)->occurred_at, at("2026-05-01T09:02:00Z"), "%s: retried keeps its own occurred_at", t);
        is_int(O(&f, 3)->occurred_at, at("2026-05-01T09:03:00Z"), "%s: retried keeps its own occurred_at (2)", t);
        is_str(O(&f, 2)->caused_by, "w-1", "%s: retried has its own cause", t);
        is_int(f.c.n_parked, 0, "%s: queue empty", t);
        is_str(cstate(&f), "MIGRATED", "%s: MIGRATED", t);
        fx_done(&f);
}

static void test_parking_stays_parked(void) {
        const char *t = "parking: a retried event that still parks keeps its deadline";
        struct fx f;

        fx_init(&f);
        apply(&f, azure("s-1", "2026-05-01T09:00:00Z", "sub-1"));
        apply(&f, csp_created("k-1", "2026-05-01T09:01:00Z", "sub-1", "csp-1", "p-1"));
        apply(&f, requested("r-1", "2026-05-01T09:05:00Z", "p-1"));
        is_int(f.out.n, 1, "%s: only the state change", t);
        is_int(f.c.n_parked, 1, "%s: still parked", t);
        is_int(f.c.parked[0].deadline, at("2026-05-01T09:11:00Z"), "%s: original deadline", t);
        apply(&f, accepted("a-1", "2026-05-01T09:06:00Z", "p-1"));
        is_int(f.out.n, 3, "%s: accepted, support, then the retried one", t);
        out_is(&f, 2, "AzureCspSubscriptionCreated", "k-1#0", t);
        is_int(f.c.n_parked, 0, "%s: applied", t);
        fx_done(&f);
}

static void test_parking_deadline(void) {
        const char *t = "parking: deadline rejection";
        struct fx f;
        mcd_time_t due;
        const char *sid = NULL;

        fx_init(&f);
        apply(&f, requested("r-1", "2026-05-02T09:00:00Z", "p-1"));
        apply(&f, license("s-1", "2026-05-02T09:01:00Z", "sub-1", "2026-05-01T00:00:00Z"));
        apply_now(&f, switch_req("w-1", "2026-05-02T09:02:00Z", "sub-1", "p-1"), "2026-05-02T09:02:30Z");
        ok(mcd_next_due(&f.c, &due, &sid), "%s: a deadline is pending", t);
        is_int(due, at("2026-05-02T09:12:30Z"), "%s: due at now + park_grace", t);
        is_str(sid, "sub-1", "%s: its subscription", t);
        is_int(fire(&f, "2026-05-02T09:12:29Z"), 0, "%s: not before the deadline", t);
        is_int(f.out.n, 0, "%s: nothing emitted early", t);
        is_int(fire(&f, "2026-05-02T09:12:30Z"), 1, "%s: fires at the deadline", t);
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "TransitionRejected", "w-1#0", t);
        rejected_is(&f, 0, "NO_ACCEPTED_RELATIONSHIP", "SwitchRequested", t);
        is_int(O(&f, 0)->occurred_at, at("2026-05-02T09:02:00Z"), "%s: occurred_at is the event's own", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "REQUESTED", "%s: customer_state", t);
        is_int(f.c.n_parked, 0, "%s: removed from the queue", t);
        is_int(fire(&f, "2026-06-01T00:00:00Z"), 0, "%s: fires once", t);
        apply(&f, accepted("a-1", "2026-05-02T09:30:00Z", "p-1"));
        is_int(f.out.n, 2, "%s: acceptance does not retry it", t);
        apply(&f, switch_req("w-1", "2026-05-02T09:31:00Z", "sub-1", "p-1"));
        nothing(&f, "parking: a rejected parked event stays a duplicate");
        fx_done(&f);
}

/* ----------------------------------------------------------- timers -- */

static void test_timer_fires(void) {
        const char *t = "timer firing";
        struct fx f;
        mcd_time_t due;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T23:59:59Z"));
        apply(&f, switch_req("w-1", "2026-03-03T09:00:00Z", "sub-1", "p-1"));
        is_int(fire(&f, "2026-06-30T23:59:58Z"), 0, "%s: not before term_end", t);
        is_int(fire(&f, "2026-07-02T00:00:00Z"), 1, "%s: fires once due", t);
        is_int(f.out.n, 1, "%s: one outcome", t);
        out_is(&f, 0, "SwitchAllowed", "timer:c-1:sub-1:term_end#0", t);
        is_str(O(&f, 0)->caused_by, "timer:c-1:sub-1:term_end", "%s: caused_by", t);
        is_str(mcd_switch_reason_name(O(&f, 0)->switch_reason), "TERM_ENDED", "%s: TERM_ENDED", t);
        is_int(O(&f, 0)->occurred_at, at("2026-06-30T23:59:59Z"), "%s: occurred_at is the due time", t);
        is_str(O(&f, 0)->partner_id, "p-1", "%s: partner_id is the customer's", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: subscription_id", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "ACCEPTED", "%s: customer_state", t);
        is_str(sub_state(&f, "sub-1"), "SWITCH_ALLOWED", "%s: SWITCH_ALLOWED", t);
        ok(!mcd_next_due(&f.c, &due, NULL), "%s: disarmed", t);
        is_int(fire(&f, "2026-12-31T00:00:00Z"), 0, "%s: fires once", t);
        apply(&f, csp_created("k-1", "2026-07-02T08:00:00Z", "sub-1", "csp-1", "p-1"));
        out_is(&f, 0, "SubscriptionMigrated", "k-1#0", t);
        out_is(&f, 1, "CustomerStateChanged", "k-1#1", t);
        fx_done(&f);
}

static void test_timer_rearmed(void) {
        const char *t = "timer re-armed after relationship removal";
        struct fx f;

        setup_accepted(&f);
        f.cfg.dedup_window = 365 * 24 * 60 * MIN;        /* a late event a month behind */
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-03T09:00:00Z", "sub-1", "p-1"));
        is_int(fire(&f, "2026-07-01T00:00:00Z"), 1, "%s: first firing", t);
        out_is(&f, 0, "SwitchAllowed", "timer:c-1:sub-1:term_end#0", t);
        apply(&f, removed("x-1", "2026-07-02T00:00:00Z", "p-1"));
        is_str(sub_state(&f, "sub-1"), "REPORTED", "%s: back to REPORTED", t);
        apply(&f, requested("r-2", "2026-07-03T00:00:00Z", "p-1"));
        apply(&f, accepted("a-2", "2026-07-04T00:00:00Z", "p-1"));
        /* a late switch request, from before term_end, blocks it again */
        apply(&f, switch_req("w-2", "2026-06-01T00:00:00Z", "sub-1", "p-1"));
        out_is(&f, 0, "SwitchBlockedUntilTermEnd", "w-2#0", t);
        is_int(fire(&f, "2026-07-05T00:00:00Z"), 1, "%s: second firing", t);
        out_is(&f, 0, "SwitchAllowed", "timer:c-1:sub-1:term_end#1", t);
        is_int(sub(&f, "sub-1")->timer_outcomes, 2, "%s: counts the timer's outcomes", t);
        fx_done(&f);
}

static void test_timer_removed_before_due(void) {
        const char *t = "timer dropped by relationship removal";
        struct fx f;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-03T09:00:00Z", "sub-1", "p-1"));
        apply(&f, removed("x-1", "2026-03-04T00:00:00Z", "p-1"));
        is_int(fire(&f, "2026-12-01T00:00:00Z"), 0, "%s: never fires", t);
        fx_done(&f);
}

static void test_next_due_order(void) {
        const char *t = "next due order";
        struct fx f;
        struct mcd_subscription s = {
                .billing = MCD_BILLING_LICENSE_BASED,
                .channel = MCD_CHANNEL_EA,
                .has_term_end = true,
                .state = MCD_SS_SWITCH_BLOCKED,
        };
        struct mcd_event parked = switch_req("w-1", "2026-03-01T00:00:00Z", "sub-a", "p-1");
        mcd_time_t due;
        const char *sid = NULL;

        fx_init(&f);
        f.c.has_cloud = true;
        f.c.state = MCD_CS_ACCEPTED;
        f.c.partner_id = strdup("p-1");
        s.subscription_id = (char *)"sub-b";
        s.term_end = at("2026-06-30T00:00:00Z");
        mcd_customer_add_sub(&f.c, &s);
        s.subscription_id = (char *)"sub-a";
        mcd_customer_add_sub(&f.c, &s);
        mcd_customer_add_parked(&f.c, &parked, at("2026-06-30T00:00:00Z"));
        s.subscription_id = (char *)"sub-0";
        s.term_end = at("2026-07-30T00:00:00Z");
        mcd_customer_add_sub(&f.c, &s);

        ok(mcd_next_due(&f.c, &due, &sid), "%s: something due", t);
        is_str(sid, "sub-a", "%s: ties broken by subscription id", t);
        is_int(fire(&f, "2026-07-01T00:00:00Z"), 1, "%s: fires", t);
        out_is(&f, 0, "SwitchAllowed", "timer:c-1:sub-a:term_end#0", "next due order: timer before deadline");
        is_int(fire(&f, "2026-07-01T00:00:00Z"), 1, "%s: fires again", t);
        out_is(&f, 0, "TransitionRejected", "w-1#0", "next due order: then the deadline of sub-a");
        is_int(fire(&f, "2026-07-01T00:00:00Z"), 1, "%s: fires a third time", t);
        out_is(&f, 0, "SwitchAllowed", "timer:c-1:sub-b:term_end#0", "next due order: then sub-b");
        is_int(fire(&f, "2026-07-01T00:00:00Z"), 0, "%s: sub-0 not due yet", t);
        ok(mcd_next_due(&f.c, &due, &sid) && strcmp(sid, "sub-0") == 0, "%s: sub-0 is next", t);
        is_int(due, at("2026-07-30T00:00:00Z"), "%s: at its term_end", t);
        fx_done(&f);
}

/* ----------------------------------------- common fields, messages -- */

static void test_outcome_fields(void) {
        const char *t = "outcome fields";
        struct fx f;
        bool all = true;

        setup_accepted(&f);
        apply(&f, license("s-1", "2026-03-02T09:00:00Z", "sub-1", "2026-06-30T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-02T09:01:00Z", "sub-1", "p-1"));
        is_str(O(&f, 0)->partner_id, "p-1", "%s: SwitchRequested takes the customer's partner", t);
        apply(&f, csp_created("k-1", "2026-03-02T09:02:00Z", "sub-1", "csp-1", "p-9"));
        is_str(O(&f, 0)->partner_id, "p-9", "%s: CspSubscriptionCreated takes its own partner_id", t);
        apply(&f, reported("s-2", "2026-03-02T09:03:00Z", "sub-2", MCD_BILLING_USAGE_BASED, MCD_CHANNEL_CSP,
                           "p-other", NULL));
        is_str(O(&f, 0)->partner_id, "p-1", "%s: seller_partner_id is not the outcome's partner", t);
        for (size_t i = 0; i < f.out.n; i++)
                all = all && f.out.v[i].message && strlen(f.out.v[i].message) > 20 &&
                      f.out.v[i].message[strlen(f.out.v[i].message) - 1] == '.';
        ok(all, "%s: every outcome has a sentence", t);
        is_str(O(&f, 0)->customer_id, "c-1", "%s: customer_id", t);
        is_str(mcd_cloud_name(O(&f, 0)->cloud), "COMMERCIAL", "%s: cloud", t);
        fx_done(&f);
}

static void test_messages(void) {
        struct mcd_outcome o = {
                .type = MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END,
                .customer_id = (char *)"c-1",
                .partner_id = (char *)"p-1",
                .subscription_id = (char *)"sub-1",
                .term_end = at("2026-06-30T23:59:59Z"),
                .channel = MCD_CHANNEL_EA,
        };
        char *m = mcd_outcome_message(&o), *again;

        is_str(m, "Switching subscription sub-1 to partner p-1 is blocked until 2026-06-30T23:59:59.000Z, "
                  "the end of its EA term; cancel the subscription to move earlier.",
               "message: SwitchBlockedUntilTermEnd");
        again = mcd_outcome_message(&o);
        is_str(again, m, "message: deterministic");
        free(m);
        free(again);

        o = (struct mcd_outcome){ .type = MCD_OUT_SUBSCRIPTION_MIGRATED, .customer_id = (char *)"c-1",
                                  .subscription_id = (char *)"sub-1" };
        m = mcd_outcome_message(&o);
        ok(m && strstr(m, "sub-1"), "message: without a partner or csp id");
        free(m);

        o = (struct mcd_outcome){ .type = MCD_OUT_TRANSITION_REJECTED, .customer_id = (char *)"c-1",
                                  .reason = (char *)"SOMETHING_NEW", .rejected_event_type = (char *)"X" };
        m = mcd_outcome_message(&o);
        ok(m && strstr(m, "SOMETHING_NEW"), "message: an unknown reason is named");
        free(m);
}

/* ------------------------------------------------------------ bounds -- */

static mcd_time_t horizon(const struct fx *f) {
        mcd_time_t h = 0;
        return mcd_seen_horizon(&f->c.seen, f->cfg.dedup_window, &h) ? h : INT64_MIN;
}

/* Window: ids older than latest - dedup_window are forgotten; an event
 * before that horizon is rejected EVENT_TOO_OLD, not recorded. */
static void test_bound_window(void) {
        const char *t = "bound window";
        struct fx f;

        fx_init(&f);
        f.cfg.dedup_window = 60 * MIN;
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        ok(horizon(&f) == at("2026-03-01T08:00:00Z"), "%s: horizon is latest - window", t);
        apply(&f, accepted("a-1", "2026-03-01T10:00:00Z", "p-1"));
        is_int(mcd_seen_count(&f.c.seen), 2, "%s: 09:00 is exactly one window behind, kept", t);
        apply(&f, license("s-1", "2026-03-01T10:30:00Z", "sub-1", "2027-01-01T00:00:00Z"));
        is_int(mcd_seen_count(&f.c.seen), 2, "%s: 09:00 forgotten once 10:30 is the latest", t);
        ok(!mcd_customer_has_seen(&f.c, "r-1"), "%s: r-1 forgotten", t);
        ok(horizon(&f) == at("2026-03-01T09:30:00Z"), "%s: horizon 09:30", t);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        is_int(f.out.n, 1, "%s: the forgotten duplicate is not applied again", t);
        rejected_is(&f, 0, "EVENT_TOO_OLD", "RelationshipRequested", t);
        ok(O(&f, 0)->subscription_id == NULL, "%s: no subscription_id for a relationship event", t);
        is_str(mcd_customer_state_name(O(&f, 0)->customer_state), "ACCEPTED", "%s: customer_state as it is", t);
        ok(!mcd_customer_has_seen(&f.c, "r-1"), "%s: its id is not recorded", t);
        apply(&f, term_ended("x-1", "2026-03-01T09:30:00Z", "sub-9"));
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "SubscriptionTermEnded", t);
        ok(mcd_customer_has_seen(&f.c, "x-1"), "%s: an event at the horizon itself is applied", t);
        apply(&f, term_ended("x-2", "2026-03-01T09:29:59.999Z", "sub-1"));
        rejected_is(&f, 0, "EVENT_TOO_OLD", "SubscriptionTermEnded", t);
        is_str(O(&f, 0)->subscription_id, "sub-1", "%s: the cause's subscription_id", t);
        fx_done(&f);
}

/* Count: past limits.seen_ids the earliest id (ties: the first seen) is
 * forgotten, and the horizon becomes 1 ms after its occurred_at. */
static void test_bound_count(void) {
        const char *t = "bound count";
        struct fx f;

        fx_init(&f);
        f.cfg.max_seen_ids = 2;
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, term_ended("x-1", "2026-03-01T09:00:00Z", "sub-9"));
        apply(&f, term_ended("x-2", "2026-03-01T11:00:00Z", "sub-9"));
        is_int(mcd_seen_count(&f.c.seen), 2, "%s: two kept", t);
        ok(!mcd_customer_has_seen(&f.c, "r-1") && mcd_customer_has_seen(&f.c, "x-1"),
           "%s: of a tie, the first seen is forgotten", t);
        ok(horizon(&f) == at("2026-03-01T09:00:00.001Z"), "%s: horizon 1 ms after the forgotten id", t);
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        rejected_is(&f, 0, "EVENT_TOO_OLD", "RelationshipRequested", t);
        is_str(cstate(&f), "REQUESTED", "%s: nothing else changes", t);
        apply(&f, term_ended("x-3", "2026-03-01T09:00:00.001Z", "sub-9"));
        rejected_is(&f, 0, "SUBSCRIPTION_UNKNOWN", "SubscriptionTermEnded", t);
        ok(mcd_customer_has_seen(&f.c, "x-3") && !mcd_customer_has_seen(&f.c, "x-1"),
           "%s: x-1, now the earliest, forgotten; x-3 kept", t);
        ok(horizon(&f) == at("2026-03-01T09:00:00.001Z"), "%s: horizon 1 ms after x-1", t);
        fx_done(&f);
}

/* Both: the horizon is the later of the two. */
static void test_bound_both(void) {
        const char *t = "bound both";
        struct fx f;

        fx_init(&f);
        f.cfg.max_seen_ids = 2;
        f.cfg.dedup_window = 60 * MIN;
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, term_ended("x-1", "2026-03-01T09:50:00Z", "sub-9"));
        apply(&f, term_ended("x-2", "2026-03-01T09:55:00Z", "sub-9"));
        ok(horizon(&f) == at("2026-03-01T09:00:00.001Z"), "%s: the count's horizon when later", t);
        apply(&f, term_ended("x-3", "2026-03-01T11:30:00Z", "sub-9"));
        is_int(mcd_seen_count(&f.c.seen), 1, "%s: the window forgot x-1 and x-2", t);
        ok(horizon(&f) == at("2026-03-01T10:30:00Z"), "%s: the window's horizon when later", t);
        ok(f.c.seen.has_forgot && f.c.seen.forgot_at == at("2026-03-01T09:00:00Z"),
           "%s: the window does not move the count's mark", t);
        fx_done(&f);
}

/* limits.subscriptions: one more than the limit is rejected; a known one,
 * or one rejected ALREADY_WITH_PARTNER, is not counted. */
static void test_bound_subscriptions(void) {
        const char *t = "bound subscriptions";
        struct fx f;

        setup_accepted(&f);
        f.cfg.max_subscriptions = 2;
        apply(&f, azure("s-1", "2026-03-01T11:00:00Z", "sub-1"));
        apply(&f, azure("s-2", "2026-03-01T11:01:00Z", "sub-2"));
        apply(&f, azure("s-1b", "2026-03-01T11:02:00Z", "sub-1"));
        nothing(&f, t);
        apply(&f, azure_csp("s-3", "2026-03-01T11:03:00Z", "sub-3", "p-1"));
        rejected_is(&f, 0, "ALREADY_WITH_PARTNER", "SubscriptionReported", t);
        apply(&f, azure("s-4", "2026-03-01T11:04:00Z", "sub-4"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "SUBSCRIPTION_LIMIT", "SubscriptionReported", t);
        is_str(O(&f, 0)->subscription_id, "sub-4", "%s: about the refused subscription", t);
        ok(!sub(&f, "sub-4") && f.c.n_subs == 2, "%s: not recorded", t);
        fx_done(&f);
}

/* limits.parked: an event that would be parked past the limit is rejected
 * PARK_LIMIT; the ones parked before it stay. */
static void test_bound_parked(void) {
        const char *t = "bound parked";
        struct fx f;

        fx_init(&f);
        f.cfg.max_parked = 1;
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        apply(&f, license("s-1", "2026-03-01T09:01:00Z", "sub-1", "2027-01-01T00:00:00Z"));
        apply(&f, switch_req("w-1", "2026-03-01T09:02:00Z", "sub-1", "p-1"));
        nothing(&f, t);
        apply(&f, switch_req("w-2", "2026-03-01T09:03:00Z", "sub-1", "p-1"));
        is_int(f.out.n, 1, "%s: one outcome", t);
        rejected_is(&f, 0, "PARK_LIMIT", "SwitchRequested", t);
        ok(f.c.n_parked == 1 && strcmp(f.c.parked[0].event.event_id, "w-1") == 0, "%s: w-1 still parked", t);
        ok(mcd_customer_has_seen(&f.c, "w-2"), "%s: the refused id is seen", t);
        apply(&f, accepted("a-1", "2026-03-01T10:00:00Z", "p-1"));
        ok(f.c.n_parked == 0 && sub(&f, "sub-1")->state == MCD_SS_SWITCH_BLOCKED, "%s: w-1 retried on acceptance",
           t);
        fx_done(&f);
}

/* Identifiers of more than 128 bytes are bad input; an offer name is kept
 * to its first 128 bytes, cut at a character boundary. */
static void test_bound_identifiers(void) {
        const char *t = "bound identifiers";
        char id128[129], id129[130], name[300];
        struct mcd_event ev = requested("r-1", "2026-03-01T09:00:00Z", "p-1");
        const char *why = NULL;
        struct fx f;

        memset(id128, 'a', 128);
        id128[128] = '\0';
        memset(id129, 'a', 129);
        id129[129] = '\0';
        ev.event_id = id128;
        is_int(mcd_event_validate(&ev, &why), 0, "%s: 128 bytes pass", t);
        ev.indirect_reseller_id = id129;
        is_int(mcd_event_validate(&ev, &why), -EINVAL, "%s: 129 bytes are bad input", t);
        is_str(why, "indirect_reseller_id is longer than 128 bytes", "%s: named", t);

        setup_accepted(&f);
        memset(name, 'x', 127);
        strcpy(name + 127, "\xc3\xa9 and more");        /* é straddles byte 128 */
        ev = azure("s-1", "2026-03-01T11:00:00Z", "sub-1");
        ev.offer_name = name;
        apply(&f, ev);
        is_int(strlen(sub(&f, "sub-1")->offer_name), 127, "%s: offer name cut before a split character", t);
        fx_done(&f);
}

/* A state read from version 1 has ids of no known time: the next event
 * gives them its own, so they are kept a whole window from then. */
static void test_bound_legacy_ids(void) {
        const char *t = "bound legacy ids";
        struct fx f;

        fx_init(&f);
        f.cfg.dedup_window = 60 * MIN;
        mcd_customer_mark_seen(&f.c, "old-1", MCD_SEEN_LEGACY);
        f.c.has_cloud = true;
        apply(&f, requested("r-1", "2026-03-01T09:00:00Z", "p-1"));
        ok(mcd_seen_ids(&f.c.seen)[0].occurred_at == at("2026-03-01T09:00:00Z"), "%s: stamped with the event's time",
           t);
        apply(&f, requested("old-1", "2026-03-01T09:10:00Z", "p-1"));
        nothing(&f, t);
        fx_done(&f);
}

static void test_bad_calls(void) {
        struct fx f;
        struct mcd_event ev = requested("r-1", "2026-03-01T09:00:00Z", "p-1");

        fx_init(&f);
        ev.customer_id = (char *)"c-2";
        apply(&f, ev);
        is_int(f.rc, -EINVAL, "apply: another customer's event is -EINVAL");
        ok(!mcd_customer_has_seen(&f.c, "r-1"), "apply: and is not marked seen");
        is_int(fire(&f, "2026-03-01T09:00:00Z"), 0, "fire: nothing due on a new customer");
        fx_done(&f);
}

int main(void) {
        test_names();
        test_validate();
        test_event_copy();
        test_seen();
        test_seen_set();
        test_timer_cause();
        test_bound_window();
        test_bound_count();
        test_bound_both();
        test_bound_subscriptions();
        test_bound_parked();
        test_bound_identifiers();
        test_bound_legacy_ids();

        test_requested_csp_partner();
        test_requested_none();
        test_requested_cancelled();
        test_requested_same_partner();
        test_requested_other_partner();
        test_accepted_requested();
        test_accepted_already();
        test_accepted_no_request();
        test_accepted_other_partner();
        test_removed_active();
        test_removed_no_relationship();
        test_removed_other_partner();
        test_reported_known();
        test_reported_already_with_partner();
        test_reported_no_relationship();
        test_reported_requested();
        test_reported_accepted();
        test_switch_unknown();
        test_switch_parked();
        test_switch_target();
        test_switch_closed();
        test_switch_already();
        test_switch_license_blocked();
        test_switch_license_ended();
        test_switch_usage_csp();
        test_switch_usage_other();
        test_csp_unknown();
        test_csp_parked();
        test_csp_partner_mismatch();
        test_csp_closed();
        test_csp_azure_created();
        test_csp_switch_allowed();
        test_csp_switch_blocked();
        test_csp_not_requested();
        test_cancel_unknown();
        test_cancel_some();
        test_cancel_csp_created();
        test_cancel_blocked();
        test_cancel_allowed();
        test_cancel_reported();
        test_cancel_closed();
        test_term_unknown();
        test_term_blocked();
        test_term_otherwise();

        test_duplicates();
        test_cloud_mismatch();
        test_settle_to_migrated();
        test_settle_to_accepted();
        test_parking_retry_order();
        test_parking_stays_parked();
        test_parking_deadline();
        test_timer_fires();
        test_timer_rearmed();
        test_timer_removed_before_due();
        test_next_due_order();
        test_outcome_fields();
        test_messages();
        test_bad_calls();
        return tap_done();
}
