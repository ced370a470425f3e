/* test_model_oom.c -- the rules' model and engine when memory runs out:
 * every allocation of mcd_event_copy, mcd_outcome_copy and mcd_apply_event
 * made to fail in turn (the first, then the second...).  Each call then
 * returns -ENOMEM (or succeeds, when the failed allocation was not needed),
 * leaves the source of a copy as it was and frees what it made: nothing
 * freed twice, nothing leaked (ASan and valgrind, which run this test, would
 * name either).  The allocator is wrapped at link time (-Wl,--wrap), so only
 * the calls of the code linked into this program fail, not libc's own. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/rules.h"
#include "handlers/timefmt.h"
#include "tests/tap.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static unsigned long calls;             /* allocations since arm() */
static unsigned long fail_at;           /* the one to fail (1-based); 0: none */

static bool fails(void) {
        return fail_at && ++calls == fail_at;
}

void *__wrap_malloc(size_t n) { return fails() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fails() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fails() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fails() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fails() ? NULL : __real_strndup(s, n); }

static void arm(unsigned long k) {
        calls = 0;
        fail_at = k;
}

/* Did the armed failure happen (the call needed that many allocations)? */
static bool hit(void) {
        bool h = fail_at && calls >= fail_at;

        fail_at = 0;
        return h;
}

static mcd_time_t at(const char *s) {
        mcd_time_t t = 0;

        if (mcd_time_parse(s, &t) < 0)
                abort();
        return t;
}

/* -------------------------------------------------------------- copies -- */

static char *services[] = {(char *)"Azure", (char *)"Office"};

static const struct mcd_event full_event = {
        .type = MCD_EV_SUBSCRIPTION_CANCELLED,
        .event_id = (char *)"e-1",
        .customer_id = (char *)"c-1",
        .partner_id = (char *)"p-1",
        .indirect_reseller_id = (char *)"r-1",
        .reason = (char *)"why",
        .subscription_id = (char *)"s-1",
        .offer_name = (char *)"Offer",
        .seller_partner_id = (char *)"p-2",
        .target_partner_id = (char *)"p-3",
        .csp_subscription_id = (char *)"s-2",
        .services = services,
        .n_services = 2,
};

static bool same_event(const struct mcd_event *a, const struct mcd_event *b) {
        return strcmp(a->event_id, b->event_id) == 0 && strcmp(a->customer_id, b->customer_id) == 0 &&
               strcmp(a->partner_id, b->partner_id) == 0 && strcmp(a->reason, b->reason) == 0 &&
               strcmp(a->csp_subscription_id, b->csp_subscription_id) == 0 && a->n_services == b->n_services &&
               strcmp(a->services[1], b->services[1]) == 0;
}

static void test_event_copy(void) {
        struct mcd_event src, dst;
        unsigned long k;
        bool all_enomem = true, intact = true, zeroed = true;

        if (mcd_event_copy(&src, &full_event) < 0)
                abort();
        for (k = 1;; k++) {
                int r;

                arm(k);
                r = mcd_event_copy(&dst, &src);
                if (!hit()) {
                        ok(r == 0 && same_event(&dst, &src), "event copy: succeeds once no allocation fails (%lu)",
                           k - 1);
                        mcd_event_clear(&dst);
                        break;
                }
                all_enomem &= r == -ENOMEM;
                intact &= same_event(&src, &full_event);
                zeroed &= dst.event_id == NULL && dst.services == NULL;
                if (r == 0)
                        mcd_event_clear(&dst);
        }
        ok(all_enomem, "event copy: each failed allocation gives -ENOMEM");
        ok(intact, "event copy: the source is intact after each (none of its strings freed)");
        ok(zeroed, "event copy: the failed copy holds nothing");
        mcd_event_clear(&src);
}

static void test_outcome_copy(void) {
        struct mcd_outcome src = {0}, dst;
        bool all_enomem = true, intact = true;
        unsigned long k;

        src.event_id = strdup("e-1#0");
        src.caused_by = strdup("e-1");
        src.customer_id = strdup("c-1");
        src.message = strdup("m");
        src.reason = strdup("r");
        src.rejected_event_type = strdup("T");
        for (k = 1;; k++) {
                int r;

                arm(k);
                r = mcd_outcome_copy(&dst, &src);
                if (!hit()) {
                        ok(r == 0 && strcmp(dst.rejected_event_type, "T") == 0 && !dst.strings,
                           "outcome copy: succeeds once no allocation fails (%lu); its strings its own", k - 1);
                        mcd_outcome_clear(&dst);
                        break;
                }
                all_enomem &= r == -ENOMEM;
                intact &= strcmp(src.customer_id, "c-1") == 0 && strcmp(src.rejected_event_type, "T") == 0;
                if (r == 0)
                        mcd_outcome_clear(&dst);
        }
        ok(all_enomem, "outcome copy: each failed allocation gives -ENOMEM");
        ok(intact, "outcome copy: the source is intact after each");
        mcd_outcome_clear(&src);
}

/* --------------------------------------------------------------- rules -- */

/* A relationship requested and accepted, a subscription reported, then
 * the event under test, applied to a fresh customer with the failure
 * armed for that event only.  Returns its result. */
static int apply_armed(const struct mcd_event *ev, unsigned long k, size_t *n_out) {
        const struct mcd_rules_config cfg = MCD_RULES_CONFIG_DEFAULT;
        struct mcd_event setup[3] = {
                {.type = MCD_EV_RELATIONSHIP_REQUESTED, .event_id = (char *)"e-1", .customer_id = (char *)"c-1",
                 .partner_id = (char *)"p-1"},
                {.type = MCD_EV_RELATIONSHIP_ACCEPTED, .event_id = (char *)"e-2", .customer_id = (char *)"c-1",
                 .partner_id = (char *)"p-1"},
                {.type = MCD_EV_SUBSCRIPTION_REPORTED, .event_id = (char *)"e-3", .customer_id = (char *)"c-1",
                 .subscription_id = (char *)"s-1", .offer_name = (char *)"Offer",
                 .billing = MCD_BILLING_LICENSE_BASED, .channel = MCD_CHANNEL_DIRECT, .has_term_end = true,
                 .term_end = at("2027-01-01T00:00:00Z")},
        };
        struct mcd_customer c;
        struct mcd_outcomes out;
        int r = 0;

        if (mcd_customer_init(&c, "c-1") < 0)
                abort();
        mcd_outcomes_init(&out);
        for (size_t i = 0; i < 3; i++) {
                setup[i].occurred_at = at("2026-01-01T00:00:00Z") + (mcd_time_t)i;
                setup[i].cloud = MCD_CLOUD_COMMERCIAL;
                if (mcd_apply_event(&c, &setup[i], setup[i].occurred_at, &cfg, &out) < 0)
                        abort();
        }
        mcd_outcomes_clear(&out);
        arm(k);
        r = mcd_apply_event(&c, ev, ev->occurred_at, &cfg, &out);
        *n_out = out.n;
        mcd_customer_clear(&c);
        mcd_outcomes_clear(&out);
        return r;
}

static void test_apply(const char *name, const struct mcd_event *ev) {
        bool all_enomem = true;
        unsigned long k;
        size_t n = 0;

        for (k = 1;; k++) {
                int r = apply_armed(ev, k, &n);

                if (!hit()) {
                        ok(r == 0 && n > 0, "%s: applied once no allocation fails (%lu), %zu outcome(s)", name,
                           k - 1, n);
                        break;
                }
                all_enomem &= r == 0 || r == -ENOMEM;
        }
        ok(all_enomem, "%s: each failed allocation gives -ENOMEM (or is not needed)", name);
}

int main(void) {
        struct mcd_event switch_to = {
                .type = MCD_EV_SWITCH_REQUESTED, .event_id = (char *)"e-4", .customer_id = (char *)"c-1",
                .subscription_id = (char *)"s-1", .target_partner_id = (char *)"p-1",
                .cloud = MCD_CLOUD_COMMERCIAL, .occurred_at = at("2026-02-01T00:00:00Z"),
        };
        struct mcd_event other = {
                .type = MCD_EV_RELATIONSHIP_REQUESTED, .event_id = (char *)"e-5", .customer_id = (char *)"c-1",
                .partner_id = (char *)"p-9", .cloud = MCD_CLOUD_COMMERCIAL,
                .occurred_at = at("2026-02-01T00:00:00Z"),
        };

        test_event_copy();
        test_outcome_copy();
        test_apply("a switch requested (an outcome with a term end)", &switch_to);
        test_apply("a request from another partner (a rejection)", &other);
        return tap_done();
}
